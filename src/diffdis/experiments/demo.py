"""The demo: train the `tiny` preset on Fashion-MNIST, then generate, classify, retrieve and report.

Everything lands in one folder (default runs/demo): the run (checkpoints, logs), model/, samples.png,
confusion.png, results.json (every figure with how it was made) and a summary table on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from ..config import (
    DEFAULT_GENERATION_STEPS,
    DEFAULT_GUIDANCE,
    DEFAULT_QUERY_GUIDANCE,
    DEFAULT_QUERY_STEPS,
    preset,
)
from ..data.captions import EVAL_TEMPLATES, GENERATION_PROMPT
from ..data.datasets import FASHION_MNIST_CLASSES, fixed_subset, load_fashion_mnist
from ..data.vocabulary import FASHION_MNIST_OFFICIAL
from ..evaluation.folders import retrieve_labelled
from ..evaluation.judge import cached_judge, generation_accuracy
from ..evaluation.zero_shot import zero_shot
from ..model_card import write_model_card
from ..pipeline import DiffDisPipeline
from ..provenance import environment
from ..samplers import DEFAULT_SAMPLER
from ..training import train
from ..utils.charts import confusion_figure, save
from ..utils.images import image_grid
from ..utils.results import table, write_json

DEMO_OVERRIDES = [
    "train.max_steps=1000",
    "train.max_minutes=10",
    "train.validate_every=500",
    "train.checkpoint_every=250",
]
STEP_SWEEP = (1, 2, 5, 10, 50)
SWEEP_IMAGES = 1000
JUDGED_PER_CLASS = 20  # samples per class scored by the judge (a CNN trained on the real training split)
GENERATION = {
    "sampler": DEFAULT_SAMPLER,
    "num_inference_steps": DEFAULT_GENERATION_STEPS,
    "guidance_scale": DEFAULT_GUIDANCE,
    "seed": 0,
    "per_class": 8,
}


def run_demo(out: str | Path = "runs/demo", overrides: list[str] | None = None, progress: bool = True) -> dict:
    out = Path(out)
    config = preset("tiny", DEMO_OVERRIDES + list(overrides or []))
    timings = {}

    start = time.perf_counter()
    model_dir = train(config, out, progress=progress)
    timings["train_s"] = time.perf_counter() - start

    pipe = DiffDisPipeline.from_pretrained(model_dir)
    test = load_fashion_mnist("test", config.model.resolution, config.model.image_channels, config.train.data_dir)
    names = test.class_names

    start = time.perf_counter()
    g = GENERATION
    prompts = [GENERATION_PROMPT.format(name) for name in names for _ in range(g["per_class"])]
    images = pipe.generate(prompts, g["num_inference_steps"], g["guidance_scale"], g["seed"], g["sampler"])
    rows = [images[i * g["per_class"] : (i + 1) * g["per_class"]] for i in range(len(names))]
    image_grid(rows, names).save(out / "samples.png")
    timings["generate_s"] = time.perf_counter() - start

    start = time.perf_counter()
    m = config.model
    real_train = load_fashion_mnist("train", m.resolution, m.image_channels, config.train.data_dir)
    judge, judge_record = cached_judge("fashion-mnist", real_train, test, out / "cache")
    judged = generation_accuracy(pipe, judge, names, JUDGED_PER_CLASS, seed=0)
    timings["judge_generations_s"] = time.perf_counter() - start

    start = time.perf_counter()
    full = zero_shot(pipe, test, seed=0)
    save(confusion_figure(full.confusion, names), out / "confusion.png")
    timings["classify_test_s"] = time.perf_counter() - start

    start = time.perf_counter()  # the same images and query noise, the candidates named as the dataset names them
    official = zero_shot(pipe, dataclasses.replace(test, class_names=FASHION_MNIST_OFFICIAL), seed=0)
    timings["classify_official_names_s"] = time.perf_counter() - start

    start = time.perf_counter()
    subset = fixed_subset(test, SWEEP_IMAGES)
    sweep = {k: zero_shot(pipe, subset, num_inference_steps=k, seed=0).accuracy for k in STEP_SWEEP}
    timings["step_sweep_s"] = time.perf_counter() - start

    start = time.perf_counter()
    retrieval = retrieve_labelled(pipe, subset)
    timings["retrieve_s"] = time.perf_counter() - start

    judged = {**judged, "judge": judge_record}
    summary = json_summary(config, model_dir, out, full, official, sweep, retrieval, judged, timings)
    write_json(out / "results.json", summary)
    write_model_card(model_dir, measured_figures(summary))
    print(report(summary))
    return summary


def _class_recall(confusion) -> list[float]:
    return (100.0 * confusion.diag() / confusion.sum(1).clamp_min(1)).tolist()


def model_record(config, model_dir: Path, out: Path) -> dict:
    """What a demo's result file says about the model it trained (read from the run's train_summary.json)."""
    training = json.loads((out / "train_summary.json").read_text())
    return {
        "path": str(model_dir.relative_to(out)),  # beside results.json
        "preset": "tiny",
        "config": config.to_dict(),
        "weights": "EMA",
        "steps_asked": config.train.max_steps,
        "steps_trained": training["steps"],
        "minutes_cap": config.train.max_minutes,
        "captions": config.train.captions,
        "vocabulary": "model/vocabulary.json",
        "training": training,
    }


def json_summary(config, model_dir, out, full, official, sweep, retrieval, judged, timings) -> dict:
    return {
        "model": model_record(config, model_dir, out),
        "data": {
            "train": f"Fashion-MNIST train minus {config.train.val_size} held out for validation",
            "test": "Fashion-MNIST test split (10,000 real images), never used in training or tuning",
            "path": config.train.data_dir,
        },
        "zero_shot": {
            "setting": "seen classes (every class name was in training captions), templates never used in training",
            "images": len(full.predictions),
            "top1": full.accuracy,
            "top5": full.top5,
            "sampler": DEFAULT_SAMPLER,
            "num_inference_steps": DEFAULT_QUERY_STEPS,
            "guidance_scale": DEFAULT_QUERY_GUIDANCE,
            "seed": 0,
            "templates": list(EVAL_TEMPLATES),
            "query_start": "Gaussian noise (the label never enters)",
            "confusion": full.confusion.tolist(),
            "confusion_png": "confusion.png",
        },
        "class_names": {
            "setting": "the same 10,000 test images and query noise, the candidates named two ways; both name sets "
            "were in the training captions (train.captions=varied)",
            "ours": {"names": list(FASHION_MNIST_CLASSES), "top1": full.accuracy},
            "official": {"names": list(FASHION_MNIST_OFFICIAL), "top1": official.accuracy},
            "difference_top1": official.accuracy - full.accuracy,
            "recall_ours": _class_recall(full.confusion),
            "recall_official": _class_recall(official.confusion),
        },
        "zero_shot_by_steps": {
            "images": SWEEP_IMAGES,
            "subset_seed": 0,
            "sampler": DEFAULT_SAMPLER,
            "guidance_scale": DEFAULT_QUERY_GUIDANCE,
            "seed": 0,
            "top1": {str(k): v for k, v in sweep.items()},
        },
        "retrieval": {
            "images": SWEEP_IMAGES,
            "texts": SWEEP_IMAGES,
            "captions": "one per image: its class name in an evaluation template (seed 0)",
            "num_inference_steps": DEFAULT_QUERY_STEPS,
            "guidance_scale": DEFAULT_QUERY_GUIDANCE,
            "seed": 0,
            "paired": {"relevant": "only the image's own caption", **retrieval["paired"]},
            "class_level": {"relevant": "any caption/image of the same class", **retrieval["class_level"]},
        },
        "generation": {
            **GENERATION,
            "prompt": GENERATION_PROMPT.format("{class}"),
            "grid": "samples.png",
            "judged": judged,
        },
        "timings_s": timings,
        "environment": environment(),
    }


def measured_figures(s: dict) -> dict:
    """The demo's headline figures for the model card, each with how it was made."""
    z, r, names, judged = s["zero_shot"], s["retrieval"], s["class_names"], s["generation"]["judged"]
    query = f"{z['num_inference_steps']} DDIM query steps, guidance {z['guidance_scale']}, seed {z['seed']}"
    return {
        "source": "the demo (`diffdis demo`): Fashion-MNIST test images, never used in training or tuning",
        "figures": [
            {
                "name": "seen-class top-1",
                "value": f"{z['top1']:.2f}%",
                "how": f"{z['images']} test images, our class names, {len(z['templates'])} evaluation templates, "
                f"{query}",
            },
            {
                "name": "seen-class top-1, official names",
                "value": f"{names['official']['top1']:.2f}%",
                "how": "the same images and noise, Fashion-MNIST's own class names",
            },
            {
                "name": "retrieval R@1, same class",
                "value": f"{r['class_level']['image_to_text_R@1']:.1f}% image->text, "
                f"{r['class_level']['text_to_image_R@1']:.1f}% text->image",
                "how": f"{r['images']} test images against one templated caption each",
            },
            {
                "name": "generation judged correct",
                "value": f"{judged['generation_accuracy']:.1f}%",
                "how": f"{judged['images']} samples, {s['generation']['num_inference_steps']} DDIM steps, guidance "
                f"{s['generation']['guidance_scale']}, judged by a CNN with "
                f"{judged['judge']['test_accuracy']:.1f}% on real test images",
            },
        ],
    }


def report(s: dict) -> str:
    z, r, t, judged = s["zero_shot"], s["retrieval"], s["timings_s"], s["generation"]["judged"]
    names, model = s["class_names"], s["model"]
    capped = " (the time cap stopped it)" if model["steps_trained"] < model["steps_asked"] else ""
    rows = [
        ("training steps", f"{model['steps_trained']} of {model['steps_asked']}{capped}"),
        (
            "seen-class top-1, 10k test",
            f"{z['top1']:.2f}%  ({z['num_inference_steps']} DDIM steps, guidance {z['guidance_scale']})",
        ),
        ("  with the official names", f"{names['official']['top1']:.2f}%  ({names['difference_top1']:+.2f} points)"),
        *[(f"  top-1 at {k} steps (1k subset)", f"{v:.2f}%") for k, v in s["zero_shot_by_steps"]["top1"].items()],
        (
            "retrieval, paired R@1/5/10",
            " / ".join(f"{r['paired'][f'image_to_text_R@{k}']:.1f}" for k in (1, 5, 10)) + "  image->text",
        ),
        ("", " / ".join(f"{r['paired'][f'text_to_image_R@{k}']:.1f}" for k in (1, 5, 10)) + "  text->image"),
        (
            "retrieval, same-class R@1",
            f"{r['class_level']['image_to_text_R@1']:.1f} image->text, "
            f"{r['class_level']['text_to_image_R@1']:.1f} text->image",
        ),
        (
            "generation judged correct",
            f"{judged['generation_accuracy']:.1f}% of {judged['images']} samples "
            f"(judge: {judged['judge']['test_accuracy']:.1f}% on real test images)",
        ),
        *[(f"time: {k[:-2]}", f"{v:.0f} s") for k, v in t.items()],
        ("time: total", f"{sum(t.values()):.0f} s"),
    ]
    return table(rows, "DiffDis demo (tiny preset, Fashion-MNIST)")
