"""The evaluation suite: zero-shot accuracy on every set of a suite and their mean, and retrieval on a
captioned held-out set, in one result dictionary that records how each number was made."""

from __future__ import annotations

import time

import torch

from ..data.datasets import FASHION_MNIST_DIR
from ..data.eval_sets import convert, load_eval_set
from ..data.shapes import load_shapes
from ..data.transforms import uint8_to_model
from ..pipeline import DEFAULT_QUERY_GUIDANCE, DEFAULT_QUERY_STEPS, DiffDisPipeline
from .report import environment, fixed_subset
from .zero_shot import zero_shot

SUITES: dict[str, tuple[str, ...]] = {
    "default": (
        "fashion-mnist",
        "digits",
        "shapes-colour",
        "shapes-shape",
        "shapes-count",
        "shapes-place",
        "shapes-heldout-colour",
        "shapes-heldout-shape",
    ),
    "fashion": ("fashion-mnist",),
    "shapes": ("shapes-colour", "shapes-shape", "shapes-count", "shapes-place", "shapes-heldout-colour",
               "shapes-heldout-shape"),
}  # fmt: skip
RETRIEVAL_IMAGES = 1000


def evaluate(
    pipe: DiffDisPipeline,
    suite: str | tuple[str, ...] = "default",
    data_dir: str = FASHION_MNIST_DIR,
    num_inference_steps: int = DEFAULT_QUERY_STEPS,
    guidance_scale: float = DEFAULT_QUERY_GUIDANCE,
    seed: int = 0,
    max_images: int | None = None,
    sampler: str = "ddim",
    start: str = "noise",
) -> dict:
    """Zero-shot top-1 (and top-5 with more than 5 classes) per set, the mean top-1 over the sets that could be
    loaded (a missing set is recorded with the reason, never silently dropped), and retrieval R@1/5/10."""
    if isinstance(suite, str) and suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; available: {', '.join(SUITES)}")
    names = SUITES[suite] if isinstance(suite, str) else suite
    m = pipe.config.model
    query = {"sampler": sampler, "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale,
             "seed": seed, "start": start}  # fmt: skip
    zero = {}
    for name in names:
        start = time.perf_counter()
        try:
            eval_set = load_eval_set(name, m.resolution, m.image_channels, data_dir, seed)
        except (FileNotFoundError, ImportError) as error:
            zero[name] = {"skipped": str(error)}
            continue
        data = fixed_subset(eval_set.data, max_images) if max_images else eval_set.data
        result = zero_shot(pipe, data, eval_set.templates, **query)
        zero[name] = {**result.summary(), "images": len(data), "classes": list(data.class_names),
                      "templates": list(eval_set.templates), "source": eval_set.source,
                      "seconds": time.perf_counter() - start}  # fmt: skip
    scored = [r["top1"] for r in zero.values() if "top1" in r]
    return {
        "zero_shot": zero,
        "zero_shot_mean_top1": sum(scored) / len(scored) if scored else None,
        "zero_shot_mean_over": [n for n, r in zero.items() if "top1" in r],
        "retrieval": shapes_retrieval(pipe, query, min(RETRIEVAL_IMAGES, max_images or RETRIEVAL_IMAGES)),
        "query": query,
        "environment": environment(),
    }


def shapes_retrieval(pipe: DiffDisPipeline, query: dict, n: int) -> dict:
    """Image<->caption retrieval on the shapes test split; identical captions count as relevant to each other."""
    m = pipe.config.model
    shapes = load_shapes("test", n, m.resolution, query["seed"])
    images = uint8_to_model(convert(shapes.images, m.resolution, m.image_channels))
    captions = shapes.captions
    relevance = torch.tensor([[a == b for b in captions] for a in captions])
    metrics = pipe.retrieve(images, captions, relevance=relevance, **query).metrics
    return {"set": f"shapes test split, {n} images and their captions", "distinct_captions": len(set(captions)),
            **metrics}  # fmt: skip
