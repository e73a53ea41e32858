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


def top1_record(correct: torch.Tensor, classes: int) -> dict[str, float | int]:
    """The figures every accuracy result carries: top-1 (%) of the (N,) per-image correctness, the image count and
    the chance level among `classes` candidates."""
    return {"top1": 100.0 * correct.float().mean().item(), "images": len(correct), "chance": 100.0 / classes}


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


def among_unseen(
    scores: torch.Tensor, labels: torch.Tensor, unseen: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(which images are of unseen classes, and the prediction for each of those restricted to the unseen classes)."""
    unseen_t = torch.as_tensor(list(unseen), dtype=torch.long)
    is_unseen = torch.isin(labels, unseen_t)
    return is_unseen, unseen_t[scores[is_unseen][:, unseen_t].argmax(1)]


def unseen_class_accuracy(scores: torch.Tensor, labels: torch.Tensor, unseen: Sequence[int]) -> dict[str, float]:
    """Zero-shot figures for classes held out of training, from (N, K) scores over all K classes:
    - unseen: top-1 among the unseen classes only, on the images of unseen classes (chance 1 / len(unseen));
    - generalized: all K classes as candidates, top-1 on seen-class images and on unseen-class images, and their
      harmonic mean (chance 1 / K)."""
    is_unseen, among = among_unseen(scores, labels, unseen)
    if not is_unseen.any() or is_unseen.all():
        raise ValueError(
            f"unseen-class figures need images of both seen and unseen classes; these {len(labels)} images have "
            f"{'only unseen' if is_unseen.all() else 'no unseen'} ones: evaluate on more images"
        )
    predictions = scores.argmax(1)
    seen_acc = 100.0 * (predictions[~is_unseen] == labels[~is_unseen]).float().mean().item()
    unseen_acc = 100.0 * (predictions[is_unseen] == labels[is_unseen]).float().mean().item()
    harmonic = 0.0 if seen_acc + unseen_acc == 0 else 2 * seen_acc * unseen_acc / (seen_acc + unseen_acc)
    return {
        "unseen_top1": 100.0 * (among == labels[is_unseen]).float().mean().item(),
        "unseen_chance": 100.0 / len(unseen),
        "generalized_seen_top1": seen_acc,
        "generalized_unseen_top1": unseen_acc,
        "generalized_harmonic_mean": harmonic,
        "generalized_chance": 100.0 / scores.shape[1],
        "unseen_images": int(is_unseen.sum()),
        "seen_images": int((~is_unseen).sum()),
    }
