"""The procedural `shapes` dataset: determinism, ground truth, held-out compositions, and training on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffdis.config import ConfigError, preset
from diffdis.data.datasets import CaptionedImages, LabelledImages
from diffdis.data.shapes import ATTRIBUTES, COLOURS, HELDOUT_PAIRS, load_shapes, scene
from diffdis.data.sources import check_data, training_data


def test_deterministic_given_seed_and_index():
    a = load_shapes("train", 20, 16, seed=3)
    b = load_shapes("train", 30, 16, seed=3)  # a longer set starts with the same samples
    assert torch.equal(a.images, b.images[:20]) and a.captions == b.captions[:20]
    c = load_shapes("train", 20, 16, seed=4)
    assert a.captions != c.captions
    assert a.images.shape == (20, 3, 16, 16) and a.images.dtype == torch.uint8


def test_heldout_pairs_never_in_train_and_always_in_heldout():
    for i in range(400):
        s = scene("train", i)
        assert not {(o.colour, o.shape) for o in s.objects} & HELDOUT_PAIRS
        h = scene("heldout", i)
        assert (h.objects[0].colour, h.objects[0].shape) in HELDOUT_PAIRS


def test_captions_and_pixels_agree():
    data = load_shapes("test", 60, 32)
    for s, image in zip(data.scenes, data.images):
        words = s.caption().split()
        assert s.objects[0].colour in words and s.objects[0].shape in words
        relation = any(f" {r} " in s.caption() for r in ("above", "below", "left of", "right of"))
        assert relation == (len(s.objects) == 2)
        # the first object's colour is the most frequent non-black colour of a one-object image
        if len(s.objects) == 1:
            pixels = image.reshape(3, -1).T.numpy().astype(int)
            bright = pixels[pixels.max(1) >= 180]  # fully covered pixels (edges are blended with black)
            reference = np.array(COLOURS[s.objects[0].colour])
            assert np.abs(bright - reference).sum(1).min() < 30


def test_attribute_sets():
    data = load_shapes("test", 50, 16)
    for attribute, names in ATTRIBUTES.items():
        labelled = data.attribute_set(attribute)
        assert isinstance(labelled, LabelledImages) and labelled.class_names == names
        assert 0 < len(labelled) <= 50 and labelled.labels.max() < len(names)
    with pytest.raises(ValueError, match="unknown attribute"):
        data.attribute_set("texture")


def test_captioned_images_mix_sources():
    labelled = LabelledImages(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 1, 0]), ("a", "b"))
    templated = CaptionedImages.from_labelled(labelled, (("x a", "y a"), ("x b", "y b")))
    fixed = CaptionedImages.from_captions(torch.ones(3, 1, 8, 8, dtype=torch.uint8), ["one", "two", "one"])
    mixed = CaptionedImages.concatenate([templated, fixed])
    assert len(mixed) == 7 and len(mixed.caption_sets) == 4
    captions = mixed.captions(np.arange(7), np.random.default_rng(0))
    assert captions[0] in ("x a", "y a") and captions[1] in ("x b", "y b")
    assert captions[4:] == ["one", "two", "one"]


@pytest.mark.slow
def test_shapes_source_needs_colour_and_trains(tmp_path):
    # refused before any compute (the data layer's check; config only reads the words)
    with pytest.raises(ConfigError, match="image_channels=3"):
        check_data(preset("tiny", ["train.data=shapes"]))
    with pytest.raises(ConfigError, match="unknown built-in data set 'cifar'"):
        check_data(preset("tiny", ["train.data=shapes+cifar", "model.image_channels=3"]))
    config = preset("tiny", ["train.data=shapes", "model.image_channels=3", "train.shapes_size=64", "train.val_size=8"])
    train, val = training_data(config)
    assert train.images.shape == (64, 3, 16, 16) and val.class_names == ATTRIBUTES["shape"] and len(val) <= 8


def test_pixel_judge_reads_each_attribute_of_a_drawing():
    import dataclasses

    from diffdis.data.shapes import render
    from diffdis.evaluation.shapes_judge import judge_scene

    for i in range(200):
        s = scene("test", i)
        image = np.asarray(render(s, 16))
        assert all(judge_scene(image, s).values()), (s, judge_scene(image, s))
        other_colour = next(c for c in COLOURS if c != s.objects[0].colour)
        wrong = dataclasses.replace(s, objects=(dataclasses.replace(s.objects[0], colour=other_colour), *s.objects[1:]))
        verdict = judge_scene(image, wrong)
        assert not verdict["colour"] and verdict["shape"] and verdict["count"]
    blank = np.zeros((16, 16, 3), dtype=np.uint8)
    assert not judge_scene(blank, scene("test", 0))["count"]


def test_shapes_generation_accuracy_reports_each_attribute():
    from helpers import SMALL

    from diffdis import DiffDisPipeline
    from diffdis.evaluation.shapes_judge import shapes_generation_accuracy

    pipe = DiffDisPipeline.from_config(preset("tiny", SMALL + ["model.image_channels=3"]))
    result = shapes_generation_accuracy(pipe, num_images=6, num_inference_steps=2)
    assert {"colour", "shape", "size", "count"} <= set(result["per_attribute"])
    assert all(0 <= v <= 100 for v in result["per_attribute"].values()) and result["images"] == 6
