"""Classes held out of training (train.holdout_classes): none of their images and no caption naming them reaches
training, in memory and streamed from shards; the validation images keep every class."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import run_overrides

from diffdis import preset
from diffdis.config import ConfigError
from diffdis.data.captions import NamesAny
from diffdis.data.datasets import FASHION_MNIST_CLASSES
from diffdis.data.pack import pack_samples, write_shards
from diffdis.data.sources import check_data, training_batches
from diffdis.data.stream import FileBatches
from diffdis.training.run_config import refused

HELD = ("sandal", "6")  # a name and an index (6 = shirt)


def test_held_out_classes_never_reach_training_in_memory(idx_dir):
    config = preset("tiny", run_overrides(idx_dir, f"train.holdout_classes={','.join(HELD)}"))
    batches, val = training_batches(config, 0, 1)
    held = [FASHION_MNIST_CLASSES.index("sandal"), 6]
    assert not torch.isin(batches.data.caption_ids, torch.tensor(held)).any()  # no image of them
    names = NamesAny(("sandal", "shirt"))
    captions = [c for step in itertools.islice(iter(batches), 20) for micro in step for c in micro["captions"]]
    assert len(captions) == 320 and not any(names(c) for c in captions)
    assert not any("t-shirt" in c.lower() for c in captions)  # a hyphen separates words: "t-shirt" says "shirt"
    assert any("jersey" in c for c in captions)  # the t-shirt class keeps its other names
    assert torch.isin(val.labels, torch.tensor(held)).any()  # validation keeps them (unseen-class tuning)


@pytest.mark.slow
def test_held_out_classes_never_reach_training_from_shards(tmp_path):
    write_shards(pack_samples("fashion-mnist:test", 16, limit=400), tmp_path, shard_size=100)
    data = f"wds:{tmp_path}/{{00000..00003}}.tar"
    overrides = [f"train.data={data}", "train.batch_size=16", "train.num_workers=0", "train.holdout_classes=bag,coat"]
    stream = FileBatches(preset("tiny", overrides), 0, 1)
    captions = [c for step in itertools.islice(iter(stream), 10) for micro in step for c in micro["captions"]]
    assert len(captions) == 160 and not any(NamesAny(("bag", "coat"))(c) for c in captions)
    assert stream.skipped().get("held-out class", 0) > 0  # skipped and counted, like any unusable sample


def test_a_class_left_without_captions_is_not_trained_on(idx_dir):
    overrides = run_overrides(idx_dir, "train.holdout_classes=shirt", "train.captions=fixed")
    with pytest.warns(UserWarning, match="t-shirt"):
        batches, _ = training_batches(preset("tiny", overrides), 0, 1)
    t_shirt = FASHION_MNIST_CLASSES.index("t-shirt")  # its one name says "shirt": every caption of it is removed
    assert not (batches.data.caption_ids == t_shirt).any()


def test_holdout_is_checked_before_any_compute(idx_dir):
    with pytest.raises(ConfigError, match="not a class of the training set.*ankle boot"):
        check_data(preset("tiny", run_overrides(idx_dir, "train.holdout_classes=hat")))
    with pytest.raises(ConfigError, match="fewer than two classes"):
        check_data(preset("tiny", run_overrides(idx_dir, "train.holdout_classes=0,1,2,3,4,5,6,7,8")))
    with pytest.raises(ConfigError, match="does not apply to shapes, which holds out concepts of its own"):
        check_data(preset("tiny", ["train.data=shapes", "model.image_channels=3", "train.holdout_classes=red"]))
    assert refused("train.holdout_classes")  # a resume cannot change which classes were never trained on
