"""`diffdis compare`: the paper's comparison at small scale. DiffDis and its single-task baselines are trained by
the same loop on the same data under the same wall-clock budget, then evaluated alike; Diffusion-Classifier
scoring reuses the trained DiffDis model's generation branch. Writes compare.md, compare.json, compare.png."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from ..config import VARIANTS, Config, data_overrides, preset
from ..data.datasets import fixed_subset, load_fashion_mnist
from ..data.eval_sets import load_eval_set
from ..data.transforms import uint8_to_model
from ..evaluation.diffusion_classifier import diffusion_classifier_scores, unet_evaluations_per_image
from ..evaluation.fid import InceptionFeatures, fid_kid
from ..evaluation.judge import cached_judge, class_samples, score_generations
from ..evaluation.report import environment, write_json
from ..evaluation.shapes_judge import shapes_generation_accuracy
from ..evaluation.suite import evaluate
from ..pipeline import DiffDisPipeline
from ..training import train

ROWS = (*VARIANTS, "diffusion-classifier")


def _cost(pipe, images: torch.Tensor, variant: str, query: dict) -> dict:
    """Network evaluations per image and measured images/s of a model's own discrimination path (for dis and
    diffdis one evaluation = down path + mid block + unique transformer; guidance doubles them)."""
    steps, guidance = query["num_inference_steps"], query["guidance_scale"]
    start = time.perf_counter()
    pipe.encode_image(images, num_inference_steps=steps, guidance_scale=guidance)
    evaluations = 1 if variant == "clip" else steps * (1 if guidance == 1.0 else 2)
    return {"unet_evaluations_per_image": evaluations, "images_per_second": len(images) / (time.perf_counter() - start)}


def evaluate_one(
    pipe: DiffDisPipeline, variant: str, suite, eval_images: int, fid_images: int, cache_dir: Path, extractor, seed: int
) -> dict:
    m = pipe.config.model
    out: dict = {}
    main_set = load_eval_set(suite[0], m.resolution, m.image_channels, pipe.config.train.data_dir, seed)
    subset = fixed_subset(main_set.data, eval_images)
    images = uint8_to_model(subset.images)
    if pipe.can_discriminate:
        result = evaluate(pipe, suite, data_dir=pipe.config.train.data_dir, seed=seed, max_images=eval_images)
        out.update(
            zero_shot=result["zero_shot"],
            zero_shot_mean_top1=result["zero_shot_mean_top1"],
            retrieval=result["retrieval"],
            query=result["query"],
        )
        out["cost"] = _cost(pipe, images[:200], variant, result["query"])
    if pipe.can_generate:
        out["generation"] = _generation(pipe, main_set, fid_images, cache_dir, extractor, seed)
    return out


def _generation(pipe, main_set, fid_images: int, cache_dir: Path, extractor, seed: int) -> dict:
    """One batch of class-prompted samples, scored by FID/KID against the set's real images and, for
    Fashion-MNIST, by the judge; shapes-trained RGB models are also judged on shapes captions."""
    names = main_set.data.class_names
    fake, target, settings = class_samples(pipe, names, max(1, fid_images // len(names)), seed)
    real = fixed_subset(main_set.data, fid_images).images
    fid = fid_kid(
        real, fake, cache_dir=cache_dir, real_key=main_set.name, kid_subset=min(100, len(fake)), extractor=extractor
    )
    out = {**settings, "fid": fid}
    if main_set.name == "fashion-mnist":
        judge, record = _judge(main_set, pipe, cache_dir)
        out.update(score_generations(judge, fake, target, names), judge=record)
    if "shapes" in [s.kind for s in pipe.config.train.sources]:
        out["shapes"] = shapes_generation_accuracy(pipe, min(200, fid_images), seed=seed)
    return out


def _judge(eval_set, pipe, cache_dir):
    """The judge, trained once on the real training split, and its record (test accuracy)."""
    m = pipe.config.model
    train_set = load_fashion_mnist("train", m.resolution, m.image_channels, pipe.config.train.data_dir)
    return cached_judge("fashion-mnist", train_set, eval_set.data, cache_dir)


def variant_config(variant: str, data: str, seed: int, budget_minutes: float, overrides: list[str]) -> Config:
    """The tiny preset as one model of the comparison trains: its variant and data, the shared budget."""
    return preset(
        "tiny",
        [
            f"model.variant={variant}",
            *data_overrides(data),
            f"train.seed={seed}",
            f"train.max_minutes={budget_minutes}",
            "train.max_steps=1000000",  # the budget, not the step count, ends training
            "train.validate_every=0",
            "train.checkpoint_every=1000000",
            *overrides,
        ],
    )


def run_compare(
    out: str | Path = "runs/compare",
    budget_minutes: float = 3.0,
    seeds: tuple[int, ...] = (0,),
    data: str = "fashion-mnist",
    suite: tuple[str, ...] = ("fashion-mnist",),
    eval_images: int = 2000,
    fid_images: int = 500,
    inception: str = "fid-helper",
    overrides: list[str] | None = None,
    progress: bool = True,
) -> dict:
    out = Path(out)
    cache_dir = out / "cache"
    extractor = InceptionFeatures(inception)
    runs: dict[str, list[dict]] = {row: [] for row in ROWS}
    for seed in seeds:
        for variant in VARIANTS:
            config = variant_config(variant, data, seed, budget_minutes, overrides or [])
            start = time.perf_counter()
            model_dir = train(config, out / f"{variant}-seed{seed}", progress=progress)
            pipe = DiffDisPipeline.from_pretrained(model_dir)
            record = {"seed": seed, "train_seconds": time.perf_counter() - start, "model": str(model_dir)}
            record.update(evaluate_one(pipe, variant, suite, eval_images, fid_images, cache_dir, extractor, seed))
            runs[variant].append(record)
            if variant == "diffdis":
                scored = _diffusion_classifier(pipe, suite[0], eval_images, seed)
                runs["diffusion-classifier"].append({"seed": seed, "model": str(model_dir), **scored})
    judged = [r["generation"]["judge"] for r in runs["diffdis"] if "generation" in r]
    summary = {
        "budget_minutes": budget_minutes,
        "seeds": list(seeds),
        "data": data,
        "suite": list(suite),
        "eval_images": eval_images,
        "fid_images": fid_images,
        "inception": inception,
        "judge": judged[0] if judged else None,
        "runs": runs,
        "table": _table(runs),
        "environment": environment(),
    }
    write_json(out / "compare.json", summary)
    (out / "compare.md").write_text(markdown(summary))
    chart(summary["table"]).save(out / "compare.png")
    print(markdown(summary))
    return summary


def _diffusion_classifier(pipe, set_name: str, eval_images: int, seed: int) -> dict:
    m = pipe.config.model
    eval_set = load_eval_set(set_name, m.resolution, m.image_channels, pipe.config.train.data_dir, seed)
    data = fixed_subset(eval_set.data, eval_images)
    images = uint8_to_model(data.images)
    start = time.perf_counter()
    scores = diffusion_classifier_scores(pipe, images, data.class_names, eval_set.templates, seed=seed)
    seconds = time.perf_counter() - start
    top1 = 100.0 * (scores.argmax(1) == data.labels).float().mean().item()
    return {
        "zero_shot": {set_name: {"top1": top1, "images": len(data)}},
        "zero_shot_mean_top1": top1,
        "cost": {
            "unet_evaluations_per_image": unet_evaluations_per_image(len(data.class_names)),
            "images_per_second": len(data) / seconds,
        },
    }


def _stat(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def _table(runs: dict[str, list[dict]]) -> dict:
    def pick(records, *path):
        vals = []
        for r in records:
            for key in path:
                r = r.get(key) if isinstance(r, dict) else None
            vals.append(r)
        return _stat(vals)

    return {
        row: {
            "zero_shot_mean_top1": pick(records, "zero_shot_mean_top1"),
            "retrieval_i2t_R@1": pick(records, "retrieval", "image_to_text_R@1"),
            "retrieval_t2i_R@1": pick(records, "retrieval", "text_to_image_R@1"),
            "fid": pick(records, "generation", "fid", "fid"),
            "kid_mean": pick(records, "generation", "fid", "kid_mean"),
            "generation_accuracy": pick(records, "generation", "generation_accuracy"),
            "unet_evaluations_per_image": pick(records, "cost", "unet_evaluations_per_image"),
            "images_per_second": pick(records, "cost", "images_per_second"),
        }
        for row, records in runs.items()
    }


def _fmt(stat: dict | None, digits: int = 2) -> str:
    if stat is None:
        return "-"
    return f"{stat['mean']:.{digits}f}" + (f" ± {stat['std']:.{digits}f}" if stat["n"] > 1 else "")


def markdown(summary: dict) -> str:
    columns = [
        ("zero-shot top-1 (mean)", "zero_shot_mean_top1", 2),
        ("shapes R@1 i->t", "retrieval_i2t_R@1", 1),
        ("shapes R@1 t->i", "retrieval_t2i_R@1", 1),
        ("FID", "fid", 1),
        ("KID", "kid_mean", 4),
        ("gen. accuracy", "generation_accuracy", 1),
        ("UNet evals / image", "unet_evaluations_per_image", 0),
        ("images/s", "images_per_second", 1),
    ]
    lines = ["| model | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row, stats in summary["table"].items():
        lines.append(f"| {row} | " + " | ".join(_fmt(stats[key], d) for _, key, d in columns) + " |")
    judge = summary.get("judge") or {}
    notes = [
        f"Budget {summary['budget_minutes']} min of training per model on {summary['data']}, seeds {summary['seeds']}; "
        f"zero-shot on {summary['suite']} ({summary['eval_images']} images per set), retrieval on the shapes test "
        f"split; FID/KID on {summary['fid_images']} generated vs real test images (torchmetrics, Inception-v3 "
        f"features: {summary['inception']}, images upsampled to 299); generation accuracy judged by a CNN with "
        f"{judge.get('test_accuracy', float('nan')):.1f}% real test accuracy. Evaluations per image: DiffDis and "
        "dis run the UNet's down path, mid block and unique transformer once per text-denoising step, clip runs the "
        "down path and mid block once, the Diffusion Classifier runs the whole UNet once per class and timestep.",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def chart(table: dict) -> Image.Image:
    """Horizontal bars of zero-shot accuracy and generation accuracy per model."""
    metrics = [("zero-shot top-1 %", "zero_shot_mean_top1"), ("generation accuracy %", "generation_accuracy")]
    width, bar_h, left = 520, 18, 150
    image = Image.new("RGB", (width, 40 + len(metrics) * (len(table) * (bar_h + 4) + 30)), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    y = 10
    for title, key in metrics:
        draw.text((10, y), title, fill="black", font=font)
        y += 18
        for row, stats in table.items():
            value = stats[key]["mean"] if stats[key] else None
            draw.text((10, y + 3), row, fill="black", font=font)
            if value is not None:
                draw.rectangle((left, y, left + int((width - left - 60) * value / 100), y + bar_h), fill=(70, 110, 220))
                draw.text(
                    (left + int((width - left - 60) * value / 100) + 4, y + 3), f"{value:.1f}", fill="black", font=font
                )
            y += bar_h + 4
        y += 12
    return image
