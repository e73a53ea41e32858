"""The generation judge: it learns a separable task, caches itself, and scores generations per class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from diffdis.data.datasets import LabelledImages
from diffdis.evaluation.judge import accuracy, cached_judge, generation_accuracy


def _stripes(n: int, seed: int) -> LabelledImages:
    """Class 0: bright top half; class 1: bright bottom half; plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.randint(0, 60, (n, 1, 16, 16), generator=g, dtype=torch.uint8)
    for i, y in enumerate(labels):
        images[i, :, :8] += 180 if y == 0 else 0
        images[i, :, 8:] += 180 if y == 1 else 0
    return LabelledImages(images, labels, ("top", "bottom"))


@pytest.mark.slow
def test_judge_learns_caches_and_reports_its_test_accuracy(tmp_path):
    train, test = _stripes(512, 0), _stripes(128, 1)
    judge, record = cached_judge("stripes", train, test, tmp_path)
    assert record["test_accuracy"] > 95 and record["test_images"] == 128
    assert accuracy(judge, test) == record["test_accuracy"]
    again, record_again = cached_judge("stripes", train, test, tmp_path)  # read back, not retrained
    assert record_again == record
    assert torch.equal(again.predict(test.images), judge.predict(test.images))


class _Painter:
    """A stand-in pipeline that draws the class its prompt names (or the other one, when `wrong`)."""

    def __init__(self, wrong: bool):
        self.wrong = wrong
        self.config = type("C", (), {"model": type("M", (), {"image_channels": 1})})()

    def generate(self, prompts, *args):
        images = []
        for prompt in prompts:
            top = ("top" in prompt) != self.wrong
            array = np.zeros((16, 16), np.uint8)
            array[:8] = 220 if top else 0
            array[8:] = 0 if top else 220
            images.append(Image.fromarray(array))
        return images


@pytest.mark.slow
def test_generation_accuracy_scores_each_prompted_class(tmp_path):
    judge, _ = cached_judge("stripes", _stripes(512, 0), _stripes(32, 1), tmp_path)
    right = generation_accuracy(_Painter(wrong=False), judge, ("top", "bottom"), per_class=3)
    wrong = generation_accuracy(_Painter(wrong=True), judge, ("top", "bottom"), per_class=3)
    assert right["images"] == 6 and right["per_class"] == {"top": 100.0, "bottom": 100.0}
    assert wrong["generation_accuracy"] == 0.0 and right["prompt"] == "a photo of a {}."
