"""Generation that checks itself, measured: candidates re-ranked by the model's own discrimination pass and
self-guidance, against spending the same time on more sampling steps or stronger classifier-free guidance.

    diffdis self-check --model runs/demo-fashion/model --out runs/self-check
    diffdis self-check --model runs/shapes/model --out runs/self-check-shapes

For each setting, on a Fashion-MNIST model: judged accuracy per class (a CNN trained on the real training split
decides whether each sample shows its prompted class) and FID/KID against real *validation* images (held out of
the training split; the test split is not read); on a `shapes` model: per attribute, the share of samples that
show the prompted colour, shape, size, place and count (the exact pixel judge), on captions of its held-out
compositions, and FID/KID against its validation scenes. Both: the cost per prompt from one alternating timing
of every setting. Results are written as each setting finishes, and finished settings are skipped when run again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from ..config import DEFAULT_GENERATION_STEPS, DEFAULT_GUIDANCE
from ..data.datasets import load_fashion_mnist
from ..data.shapes import load_shapes
from ..data.sources import validation_set
from ..evaluation.fid import InceptionFeatures, fid_kid
from ..evaluation.judge import cached_judge, class_samples, pil_to_uint8, score_generations
from ..evaluation.shapes_judge import judge_scenes
from ..pipeline import DiffDisPipeline
from ..provenance import environment
from ..utils.charts import bar_chart, save
from ..utils.results import write_json
from ..utils.timing import alternating_times, per_item

BASE = {"num_inference_steps": DEFAULT_GENERATION_STEPS, "guidance_scale": DEFAULT_GUIDANCE}
SETTINGS: dict[str, dict] = {
    "plain": {},
    "candidates 2": {"candidates": 2},
    "candidates 4": {"candidates": 4},
    "candidates 8": {"candidates": 8},
    "self-guidance 3": {"self_guidance": 3.0},
    "self-guidance 10": {"self_guidance": 10.0},
    "self-guidance 30": {"self_guidance": 30.0},
    "self-guidance 100": {"self_guidance": 100.0},
    "candidates 4 + self-guidance 30": {"candidates": 4, "self_guidance": 30.0},
    "200 steps": {"num_inference_steps": 200},
    "guidance 5": {"guidance_scale": 5.0},
    "guidance 7": {"guidance_scale": 7.0},
}


def measure_fashion(pipe, options: dict, judge, real, extractor, cache: Path, per_class: int, seed: int) -> dict:
    names = list(pipe.vocabulary["classes"])
    images, target, made = class_samples(pipe, names, per_class, seed, **{**BASE, **options})
    judged = score_generations(judge, images, target, names)
    quality = fid_kid(real, images, cache_dir=cache, real_key="validation", extractor=extractor)
    return {**made, "judged": judged, "fid_kid": quality}


def measure_shapes(pipe, options: dict, real, extractor, cache: Path, images: int, seed: int) -> dict:
    scenes = load_shapes("heldout", images, pipe.config.model.resolution, seed).scenes
    samples = pipe.generate([s.caption() for s in scenes], seed=seed, **{**BASE, **options})
    per_attribute = judge_scenes(samples, scenes)
    quality = fid_kid(real, pil_to_uint8(samples, 3), cache_dir=cache, real_key="validation", extractor=extractor)
    judged = {
        "per_attribute": per_attribute,
        "generation_accuracy": sum(per_attribute.values()) / len(per_attribute),  # mean over attributes
        "prompts": f"{images} captions of the held-out compositions",
    }
    return {**BASE, **options, "judged": judged, "fid_kid": quality}


def alternating_cost(
    pipe: DiffDisPipeline, prompts: list[str], settings: dict[str, dict], rounds: int = 3
) -> dict[str, dict]:
    """Seconds per prompt of each setting, measured in one process with the settings alternating."""
    contenders = {
        name: lambda options=options: pipe.generate(prompts, **{**BASE, **options})
        for name, options in settings.items()
    }
    seconds = alternating_times(contenders, rounds=rounds, warmup=0)
    return {name: per_item(t, len(prompts), key="median_s_per_prompt") for name, t in seconds.items()}


def run(
    model: str | Path,
    out: str | Path,
    per_class: int = 25,
    seed: int = 0,
    data_dir: str | None = None,
    settings: tuple[str, ...] | None = None,
) -> dict:
    """Measure `settings` (names of SETTINGS; default all) on the model, skipping those already in OUT."""
    settings = settings or tuple(SETTINGS)
    unknown = [name for name in settings if name not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown settings {unknown}; choose among {list(SETTINGS)}")
    chosen = {name: SETTINGS[name] for name in settings}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = DiffDisPipeline.from_pretrained(model)
    m, t = pipe.config.model, pipe.config.train
    shapes = t.data == "shapes"
    if not shapes and (pipe.vocabulary or {}).get("data") != "fashion-mnist":
        raise ValueError(f"{model} was trained on neither Fashion-MNIST (see its vocabulary.json) nor shapes alone")
    root = data_dir or t.data_dir
    # FID reference: the images held out of the model's own training split, as its in-training validation read them
    val = validation_set(dataclasses.replace(pipe.config, train=dataclasses.replace(t, data_dir=root))).images
    if shapes:
        prompts = [s.caption() for s in load_shapes("heldout", 8, m.resolution, seed).scenes]
        record = {"judge": "exact pixel judge of each attribute (evaluation/shapes_judge.py)"}
    else:
        train_full = load_fashion_mnist("train", m.resolution, m.image_channels, root)
        test = load_fashion_mnist("test", m.resolution, m.image_channels, root)  # read only for the judge's accuracy
        judge_cache = Path(model).parent / "cache"  # the demo's trained judge, when the model is the demo's
        judge, judge_record = cached_judge(
            "fashion-mnist", train_full, test, judge_cache if judge_cache.exists() else out
        )
        prompts = [f"a photo of a {n}." for n in list(pipe.vocabulary["classes"])[:8]]
        record = {"judge": judge_record}
    extractor = InceptionFeatures("fid-helper")
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"settings": {}}
    for name, options in chosen.items():
        if name in results["settings"]:
            continue
        print(f"[self-check] {name}", flush=True)
        started = time.perf_counter()
        if shapes:
            figures = measure_shapes(pipe, options, val, extractor, out, 10 * per_class, seed)
        else:
            figures = measure_fashion(pipe, options, judge, val, extractor, out, per_class, seed)
        results["settings"][name] = {**figures, "seconds_this_run": time.perf_counter() - started}
        write_json(results_path, results)
    if "cost" not in results:
        results["cost"] = {"prompts": len(prompts), "per_setting": alternating_cost(pipe, prompts, chosen)}
    results.update(
        model=str(model),
        **record,
        fid_reference=f"{len(val)} validation images held out of the training split (seed {t.seed})",
        samples_per_setting=10 * per_class,
        seed=seed,
        environment=environment(),
    )
    write_json(results_path, results)
    bars = {n: (r["judged"]["generation_accuracy"], 0.0) for n, r in results["settings"].items()}
    save(bar_chart(bars, "judged generation accuracy (%) by setting"), out / "judged.png")
    return results


def summary_lines(results: dict) -> list[str]:
    """One line per setting: judged accuracy, FID and the cost per prompt."""
    lines = []
    for name, r in results["settings"].items():
        cost = results["cost"]["per_setting"][name]["median_s_per_prompt"]
        judged, fid = r["judged"]["generation_accuracy"], r["fid_kid"]["fid"]
        lines.append(f"{name:34s} judged {judged:5.1f}%  FID {fid:6.1f}  {1000 * cost:7.1f} ms/prompt")
    return lines
