"""Benchmark 1: zero-shot classification by query denoising against Diffusion-Classifier scoring with the same
model's generation branch; how the gap grows with the class count; accuracy against query-denoising steps."""

from __future__ import annotations

import torch

from diffdis.config import DEFAULT_QUERY_STEPS
from diffdis.data.datasets import fixed_subset
from diffdis.data.eval_sets import load_eval_set
from diffdis.data.transforms import uint8_to_model
from diffdis.evaluation.diffusion_classifier import diffusion_classifier_scores, unet_evaluations_per_image
from diffdis.evaluation.zero_shot import zero_shot
from diffdis.utils.charts import line_chart, save
from diffdis.utils.timing import alternating_times

from .common import OUT, print_table

STEPS = (1, 2, 4, 8, 16, 50)
DIFFDIS_BATCH = 256  # every DiffDis timing: one batch of this many test images, scored against the label set
ROUNDS = 5  # alternating rounds after one warm-up round; medians and ranges are reported
SETTINGS = {  # name -> encode_image options
    "ddim, Gaussian start": {"sampler": "ddim", "start": "noise"},
    "ddim, zero start": {"sampler": "ddim", "start": "zero"},
    "dpm-solver++, Gaussian start": {"sampler": "dpm", "start": "noise"},
}


def accuracy_by_steps(pipe, images_per_set: int) -> dict:
    """Zero-shot top-1 on Fashion-MNIST (test subset) and scikit-learn digits for every setting and step count."""
    m = pipe.config.model
    sets = {name: load_eval_set(name, m.resolution, m.image_channels) for name in ("fashion-mnist", "digits")}
    table = {}
    for setting, options in SETTINGS.items():
        for steps in STEPS:
            if options["sampler"] == "dpm" and steps == 1:
                continue  # one DPM-Solver++ step is the DDIM step
            for name, eval_set in sets.items():
                data = fixed_subset(eval_set.data, images_per_set)
                acc = zero_shot(pipe, data, eval_set.templates, num_inference_steps=steps, seed=0, **options).accuracy
                table.setdefault(setting, {}).setdefault(name, {})[steps] = acc
    rows = [
        [f"{setting} / {name}"] + [f"{by_steps.get(k, float('nan')):.1f}" for k in STEPS]
        for setting, per_set in table.items()
        for name, by_steps in per_set.items()
    ]
    print_table("zero-shot top-1 (%) by text-query steps", ["setting / set"] + [str(k) for k in STEPS], rows)
    series = {s: {int(k): v for k, v in per_set["fashion-mnist"].items()} for s, per_set in table.items()}
    title = "zero-shot top-1 on Fashion-MNIST (1,000 test images) by query steps"
    save(line_chart([(series, title)], "text-query denoising steps", "top-1 %"), OUT / "zero_shot_by_steps.png")
    return {"sets": {n: f"{min(images_per_set, len(s.data))} images" for n, s in sets.items()}, "table": table}


def speed_vs_diffusion_classifier(pipe, dc_images: int, dd_images: int) -> dict:
    """10 Fashion-MNIST classes: accuracy and per-image wall time of both methods, on the same model."""
    m = pipe.config.model
    eval_set = load_eval_set("fashion-mnist", m.resolution, m.image_channels)
    data = fixed_subset(eval_set.data, dd_images)
    names, templates = eval_set.data.class_names, eval_set.templates
    ours = zero_shot(pipe, data, templates, seed=0).accuracy
    dc_data = fixed_subset(eval_set.data, dc_images)
    dc_scores = diffusion_classifier_scores(pipe, uint8_to_model(dc_data.images), names, templates)
    dc_accuracy = 100.0 * (dc_scores.argmax(1) == dc_data.labels).float().mean().item()
    ours_same = zero_shot(pipe, dc_data, templates, seed=0).accuracy  # on the images DC was scored on
    batch = uint8_to_model(fixed_subset(eval_set.data, DIFFDIS_BATCH).images)
    few = uint8_to_model(dc_data.images[:50])  # the Diffusion Classifier is timed on fewer images
    pipe.class_embeddings(names, templates)  # computed once per label set, outside the timed part
    seconds = alternating_times(
        {
            "diffdis": lambda: pipe.scores(batch, names, templates),
            "diffusion_classifier": lambda: diffusion_classifier_scores(pipe, few, names, templates),
        },
        rounds=ROUNDS,
    )
    sizes = {"diffdis": len(batch), "diffusion_classifier": len(few)}
    per_image = {k: v["median"] / sizes[k] for k, v in seconds.items()}
    spread = {k: [v["min"] / sizes[k], v["max"] / sizes[k]] for k, v in seconds.items()}
    speedup = per_image["diffusion_classifier"] / per_image["diffdis"]
    print_table(
        "zero-shot, 10 classes, same model",
        ["method", "UNet evaluations / image", "ms / image", "top-1 % (same images)"],
        [
            [
                f"DiffDis, {DEFAULT_QUERY_STEPS} query steps",
                f"{DEFAULT_QUERY_STEPS} (down path + mid block)",
                1000 * per_image["diffdis"],
                ours_same,
            ],
            [
                "Diffusion Classifier",
                f"{unet_evaluations_per_image(10)} (whole UNet)",
                1000 * per_image["diffusion_classifier"],
                dc_accuracy,
            ],
        ],
    )
    print(
        f"speed-up: {speedup:.1f}x (median of {ROUNDS} alternating rounds); "
        f"DiffDis top-1 on {len(data)} images: {ours:.2f}%"
    )
    return {
        "speedup": speedup,
        "seconds_per_image": per_image,
        "seconds_per_image_range": spread,
        "diffusion_classifier_accuracy": dc_accuracy,
        "diffdis_accuracy_same_images": ours_same,
        "diffdis_accuracy": ours,
        "images": {"diffusion_classifier": len(dc_data), "diffdis": len(data), "timing": sizes},
        "diffusion_classifier_timesteps": 8,
    }


def class_count_scaling(pipe, counts=(10, 100, 1000)) -> dict:
    """Per-image wall time of both methods with synthetic label sets of growing size, timed as the headline
    comparison times them (DiffDis on the same 256-image batch; alternating rounds after a warm-up; medians).
    Label embeddings are computed once per set for both (not timed)."""
    m = pipe.config.model
    eval_set = load_eval_set("fashion-mnist", m.resolution, m.image_channels)
    dd_images = uint8_to_model(fixed_subset(eval_set.data, DIFFDIS_BATCH).images)  # the same batch at every count
    result, rows = {}, []
    for count in counts:
        names = [f"object number {i}" for i in range(count)]
        n = max(2, 320 // count)  # Diffusion-Classifier cost grows with the count: fewer images suffice
        dc_images = uint8_to_model(fixed_subset(eval_set.data, n).images)
        pipe.class_embeddings(names)
        seconds = alternating_times(
            {
                "diffdis": lambda names=names: pipe.scores(dd_images, names),
                "dc": lambda names=names, dc_images=dc_images: diffusion_classifier_scores(pipe, dc_images, names),
            },
            rounds=ROUNDS if count <= 100 else 2,
        )
        ours, theirs = seconds["diffdis"]["median"] / len(dd_images), seconds["dc"]["median"] / n
        result[count] = {
            "diffdis_s_per_image": ours,
            "diffusion_classifier_s_per_image": theirs,
            "images": {"diffdis": len(dd_images), "diffusion_classifier": n},
            "rounds": seconds["dc"]["rounds"],
        }
        rows.append([count, 1000 * ours, 1000 * theirs, theirs / ours])
    print_table("cost against the number of classes", ["classes", "DiffDis ms/image", "DC ms/image", "ratio"], rows)
    return result


def run(pipe) -> dict:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    return {
        "vs_diffusion_classifier": speed_vs_diffusion_classifier(pipe, dc_images=200, dd_images=2000),
        "class_count_scaling": class_count_scaling(pipe),
        "accuracy_by_steps": accuracy_by_steps(pipe, images_per_set=1000),
    }
