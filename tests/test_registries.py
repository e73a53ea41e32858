"""What a maintainer adds is one new piece and one registration: a built-in data set, an evaluation set (samplers
and variants: test_baselines.py). And the data specs: one parser, one meaning per word."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import SMALL

from diffdis import preset
from diffdis.config import ConfigError
from diffdis.data import builtin, eval_sets
from diffdis.data.datasets import CaptionedImages, LabelledImages
from diffdis.specs import CAPTIONED, LABELLED, SpecError, parse_data, parse_spec


def _stripes(n: int, seed: int) -> LabelledImages:
    """Horizontal or vertical stripes, 16x16 greyscale."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    stripes = np.tile((np.arange(16) % 4 < 2) * 255, (16, 1)).astype(np.uint8)  # vertical
    images = np.stack([stripes.T if k else stripes for k in labels])[:, None]
    names = ("vertical stripes", "horizontal stripes")
    return LabelledImages(torch.from_numpy(images), torch.from_numpy(labels), names)


def _stripes_load(config):
    train, val = _stripes(64, 0), _stripes(16, 1)
    captions = tuple((f"a picture of {name}.", f"{name}.") for name in train.class_names)
    return CaptionedImages.from_labelled(train, captions), val


def _stripes_eval(name, resolution, channels, data_dir, seed):
    data = _stripes(20, 2 + seed)
    return eval_sets.EvalSet(name, data, ("a picture of {}.",), "procedural stripes, seed 2")


@pytest.fixture()
def registries():
    """The registries as they were, restored in place after the test (other modules hold the same dicts)."""
    saved = [(r, dict(r)) for r in (builtin.BUILTIN, eval_sets.EVAL_SETS)]
    yield
    for registry, entries in saved:
        registry.clear()
        registry.update(entries)


STRIPES = builtin.BuiltinSet(
    "stripes", _stripes_load, lambda c: None, lambda c: None, {"stripes-test": "trained"}, "toy stripes"
)


def test_a_new_data_set_is_one_registration(registries):
    """Registered once, a set is a valid train.data, its evaluation set loads by name, and the suite knows what
    training on it makes of that set."""
    from diffdis.evaluation.suite import relation

    builtin.register_builtin(STRIPES)
    eval_sets.register_eval_set("stripes-test", _stripes_eval)
    with pytest.raises(ValueError, match="taken"):
        builtin.register_builtin(STRIPES)
    config = preset("tiny", [*SMALL, "train.data=stripes"])
    builtin.check_builtin(config)  # registered: nothing to refuse
    assert builtin.builtin("stripes").load(config)[0].images.shape == (64, 1, 16, 16)
    assert eval_sets.load_eval_set("stripes-test", 16, 1).data.images.shape == (20, 1, 16, 16)
    assert relation("stripes-test", config) == "trained" and relation("digits", config) == "not trained on"


@pytest.mark.slow
def test_a_registered_data_set_trains_from_the_command_line(tmp_path, registries):
    from diffdis.cli import main

    builtin.register_builtin(STRIPES)
    overrides = [*SMALL, "train.batch_size=8", "train.validate_every=0", "train.val_images=16", "train.sample_rows=0"]
    args = ["train", "--data", "stripes", "--max-steps", "2", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*args, *[a for o in overrides for a in ("--set", o)]]) == 0
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["validation"][-1]["val_images"] == 16  # its own validation split


def test_unknown_names_list_what_is_registered():
    config = preset("tiny", ["train.data=cifar"])  # the words parse; the name is checked by the data layer
    with pytest.raises(ConfigError, match="use one of fashion-mnist, shapes, emoji, or files of your own: wds:"):
        builtin.check_builtin(config)
    with pytest.raises(ValueError, match="use one of fashion-mnist, emoji-unseen.*classes:DIR, idx:IMAGES,LABELS"):
        eval_sets.load_eval_set("cifar", 16, 1)


def test_one_parser_one_meaning_per_word():
    assert parse_spec("wds:/d/{0..3}.tar", CAPTIONED).paths == ["/d/{0..3}.tar"]
    assert parse_spec("idx:/a,/b", LABELLED).paths == ["/a", "/b"]
    assert parse_spec("fashion-mnist:test").named and parse_spec("fashion-mnist:test").target == "test"
    assert [(s.kind, s.weight) for s in parse_data("wds:/a@3+csv:/b.csv")] == [("wds", 3.0), ("csv", 1.0)]
    # folder: is a captioned folder everywhere; labelled folders are classes:
    with pytest.raises(SpecError, match="folder:DIR holds captioned images .* use classes:DIR, idx:IMAGES,LABELS"):
        parse_spec("folder:/x", LABELLED, "evaluation set")
    with pytest.raises(ConfigError, match="train.val_data='folder:/x'.*use classes:DIR"):
        preset("tiny", ["train.val_data=folder:/x"])
    with pytest.raises(ConfigError, match="classes:DIR holds labelled images .* use wds:SHARDS, folder:DIR, csv:FILE"):
        preset("tiny", ["train.data=classes:/x"])
    with pytest.raises(SpecError, match="write it as idx:IMAGES,LABELS"):
        parse_spec("idx:/only-one")
    with pytest.raises(ConfigError, match="never a test split"):
        preset("tiny", ["train.val_data=fashion-mnist"])
    with pytest.raises(ConfigError, match="mixes built-in and file sources"):
        preset("tiny", ["train.data=fashion-mnist+wds:/a"])
    with pytest.raises(ConfigError, match="takes no argument"):
        preset("tiny", ["train.data=shapes:test"])
