"""Benchmark 6: discrimination at the cost of an encoder. DiffDis's query path against one pass of the `clip`
baseline's image tower (the same UNet down path and mid block, pooled, one linear head), on the same machine,
batch and images, alternating; with the accuracy of each DiffDis setting beside its cost.

The `clip` tower is timed on a model of the same shape as the measured one (its weights do not change its cost);
accuracies are DiffDis's own, on Fashion-MNIST test images."""

from __future__ import annotations

import dataclasses

import torch

from diffdis import DiffDisPipeline
from diffdis.config import DEFAULT_QUERY_GUIDANCE, DEFAULT_QUERY_STEPS
from diffdis.data.datasets import fixed_subset
from diffdis.data.eval_sets import load_eval_set
from diffdis.data.transforms import uint8_to_model
from diffdis.evaluation.zero_shot import zero_shot
from diffdis.utils.timing import alternating_times

from .common import print_table

BATCHES = (1, 16, 256)
HEADLINE_BATCH = 256
SETTINGS = {  # DiffDis query settings: the default, and the one-evaluation read-out from a zero start
    "default": {"num_inference_steps": DEFAULT_QUERY_STEPS, "guidance_scale": DEFAULT_QUERY_GUIDANCE},
    "one read-out": {"sampler": "x0", "start": "zero"},
}


def clip_tower_like(pipe: DiffDisPipeline) -> DiffDisPipeline:
    """An untrained `clip` baseline of the measured model's shape: its image tower costs what a trained one does."""
    torch.manual_seed(0)
    config = dataclasses.replace(pipe.config, model=dataclasses.replace(pipe.config.model, variant="clip"))
    return DiffDisPipeline.from_config(config).to(pipe.device)


def part_costs(pipe: DiffDisPipeline, images: torch.Tensor) -> dict[str, float]:
    """Milliseconds per image of the read-out's parts: the image prefix (the query-independent start), the
    down path and mid block with the text stream, and the unique transformer with its head."""
    model = pipe.model
    z = pipe.autoencoder.encode(images)
    t = torch.full((len(z),), pipe.scheduler.config.num_train_timesteps - 1)
    e = torch.zeros(len(z), model.text_dim)

    def prefix():
        return model.image_prefix(z)

    def whole():
        return model.predict_query(z, e, t, model.image_prefix(z))

    with torch.no_grad():
        seconds = alternating_times({"image prefix": prefix, "whole read-out": whole}, rounds=5)
    ms = {name: 1000 * s["median"] / len(z) for name, s in seconds.items()}
    ms["text stream, down path, mid block, unique transformer"] = ms["whole read-out"] - ms["image prefix"]
    return ms


def run(pipe: DiffDisPipeline, images: int = 2000) -> dict:
    m = pipe.config.model
    eval_set = load_eval_set("fashion-mnist", m.resolution, m.image_channels)
    data = fixed_subset(eval_set.data, images)
    accuracy = {
        name: zero_shot(pipe, data, eval_set.templates, seed=0, **options).accuracy
        for name, options in SETTINGS.items()
    }
    clip = clip_tower_like(pipe)
    test = uint8_to_model(fixed_subset(eval_set.data, HEADLINE_BATCH).images)
    by_batch, rows = {}, []
    for batch in BATCHES:
        x = test[:batch]
        contenders = {
            f"diffdis {name}": (lambda x=x, o=options: pipe.encode_image(x, **o)) for name, options in SETTINGS.items()
        }
        contenders["clip tower"] = lambda x=x: clip.encode_image(x)
        seconds = alternating_times(contenders, rounds=7 if batch > 1 else 25, warmup=2)
        ms = {name: {k: 1000 * v / batch for k, v in s.items()} for name, s in seconds.items()}
        by_batch[batch] = ms
        tower = ms["clip tower"]["median"]
        for name in SETTINGS:
            d = ms[f"diffdis {name}"]
            rows.append([batch, name, d["median"], f"{d['min']:.3g}-{d['max']:.3g}", tower, d["median"] / tower])
    print_table(
        "query path vs one pass of the clip image tower (ms / image, median of alternating rounds)",
        ["batch", "DiffDis setting", "DiffDis", "range", "clip tower", "ratio"],
        rows,
    )
    parts = part_costs(pipe, test)
    print_table("the one read-out's parts (batch 256, ms / image)", ["part", "ms"], [[k, v] for k, v in parts.items()])
    headline = by_batch[HEADLINE_BATCH]
    ratio = headline["diffdis one read-out"]["median"] / headline["clip tower"]["median"]
    print(
        f"one read-out / clip tower at batch {HEADLINE_BATCH}: {ratio:.2f}x; top-1 on {len(data)} test images: "
        f"default {accuracy['default']:.2f}%, one read-out {accuracy['one read-out']:.2f}%"
    )
    return {
        "ratio": ratio,
        "batch": HEADLINE_BATCH,
        "accuracy": accuracy,
        "accuracy_images": len(data),
        "settings": SETTINGS,
        "ms_per_image_by_batch": by_batch,
        "parts_ms_per_image": parts,
    }
