"""Data: the IDX reader, image conversion, captions, and resumable batches."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_idx
from PIL import Image

from diffdis.data.batches import BatchPosition, ShuffledBatches
from diffdis.data.captions import EVAL_TEMPLATES, TRAIN_TEMPLATES, captions_for
from diffdis.data.idx import read_idx
from diffdis.data.transforms import image_to_uint8


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    assert np.array_equal(read_idx(tmp_path / name), array)


def test_idx_refuses_garbage_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 5, 5)))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_pil_mode_converts(mode):
    image = Image.new("RGB", (40, 23), (200, 30, 90)).convert(mode)
    for channels in (1, 3):
        out = image_to_uint8(image, 16, channels)
        assert out.shape == (channels, 16, 16) and out.dtype == np.uint8


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert image_to_uint8(image, 8, 1).min() == 255


def test_train_and_eval_templates_are_disjoint():
    assert not set(TRAIN_TEMPLATES) & set(EVAL_TEMPLATES)
    captions = captions_for(np.array([0, 1, 1]), ("cat", "dog"), TRAIN_TEMPLATES, seed=0)
    assert "cat" in captions[0] and "dog" in captions[2]
    assert captions == captions_for(np.array([0, 1, 1]), ("cat", "dog"), TRAIN_TEMPLATES, seed=0)  # reproducible


def test_batches_resume_mid_epoch_exactly():
    full = ShuffledBatches(10, 3, seed=4)
    stream = iter(full)
    expected = [next(stream)[0].tolist() for _ in range(7)]  # crosses two epoch boundaries (3 batches each)
    first = ShuffledBatches(10, 3, seed=4)
    it = iter(first)
    got = [next(it)[0].tolist() for _ in range(4)]
    resumed = ShuffledBatches(10, 3, seed=4, position=BatchPosition(first.position.epoch, first.position.offset))
    it = iter(resumed)
    got += [next(it)[0].tolist() for _ in range(3)]
    assert got == expected
    assert sorted(sum(expected[:3], [])) == sorted(set(sum(expected[:3], [])))  # no repeats within an epoch


def test_no_evaluation_template_is_a_training_template():
    from diffdis.data.captions import EVAL_TEMPLATES_BY_SET

    for name, templates in EVAL_TEMPLATES_BY_SET.items():
        assert not set(templates) & set(TRAIN_TEMPLATES), name


def test_shapes_test_scenes_that_equal_training_scenes_are_measured_and_removed():
    from diffdis.data.shapes import load_shapes

    train = load_shapes("train", 3000, 16)
    test = load_shapes("test", 300, 16)
    kept, overlap = test.without(train)
    trained = set(train.captions)
    shared = sum(c in trained for c in test.captions)
    assert shared > 0 and overlap == shared / len(test.captions)  # the finite scene space does repeat scenes
    assert len(kept.scenes) == len(test.scenes) - shared and not trained & set(kept.captions)
    assert kept.images.shape[0] == len(kept.scenes)
