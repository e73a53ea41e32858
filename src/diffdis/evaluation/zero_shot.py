"""Zero-shot classification of a labelled set: the images go in, the labels are only used to score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.datasets import LabelledImages
from ..data.transforms import uint8_to_model


@dataclass
class ZeroShotResult:
    accuracy: float  # top-1, percent
    top5: float | None  # percent; None with 5 classes or fewer
    predictions: torch.Tensor  # (N,)
    confusion: torch.Tensor  # (K, K) rows = true class, columns = predicted

    def summary(self) -> dict[str, float]:
        out = {"top1": self.accuracy}
        if self.top5 is not None:
            out["top5"] = self.top5
        return out


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def zero_shot(pipeline, data: LabelledImages, templates: Sequence[str] | None = None, **query) -> ZeroShotResult:
    """Classify every image of `data` against its class names; the query is denoised from noise (or zero), so
    the label never reaches the model. `query`: encode_image's options (num_inference_steps, guidance_scale,
    seed, sampler, start)."""
    scores = pipeline.scores(uint8_to_model(data.images), data.class_names, templates, **query).cpu()  # (N, K)
    predictions = scores.argmax(dim=1)
    labels = data.labels
    k = len(data.class_names)
    top5 = None
    if k > 5:
        top5 = 100.0 * (scores.topk(5, dim=1).indices == labels[:, None]).any(1).float().mean().item()
    return ZeroShotResult(
        accuracy=100.0 * (predictions == labels).float().mean().item(),
        top5=top5,
        predictions=predictions,
        confusion=confusion_matrix(labels, predictions, k),
    )
