"""Generation that checks itself, measured: candidates re-ranked by the model's own discrimination pass and
self-guidance, against spending the same time on more sampling steps or stronger classifier-free guidance.

    python -m diffdis.experiments.self_check --model runs/demo/model --out runs/self-check

For each setting: judged accuracy per class (a CNN trained on the real Fashion-MNIST training split decides
whether each sample shows its prompted class), FID and KID against real *validation* images (held out of the
training split; the test split is not read), and the cost per prompt from one alternating timing of every
setting. Results are written as each setting finishes, and finished settings are skipped when run again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..config import DEFAULT_GENERATION_STEPS, DEFAULT_GUIDANCE
from ..data.datasets import load_fashion_mnist, train_val_split
from ..evaluation.fid import InceptionFeatures, fid_kid
from ..evaluation.figures import bar_chart
from ..evaluation.judge import cached_judge, class_samples, score_generations
from ..evaluation.report import environment, write_json
from ..pipeline import DiffDisPipeline

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


def measure(
    pipe: DiffDisPipeline,
    name: str,
    options: dict,
    judge,
    real: torch.Tensor,
    extractor: InceptionFeatures,
    cache: Path,
    per_class: int,
    seed: int,
) -> dict:
    settings = {**BASE, **options}
    names = list(pipe.vocabulary["classes"]) if pipe.vocabulary else None
    started = time.perf_counter()
    images, target, made = class_samples(pipe, names, per_class, seed, **settings)
    seconds = time.perf_counter() - started
    judged = score_generations(judge, images, target, names)
    quality = fid_kid(real, images, cache_dir=cache, real_key="validation", extractor=extractor)
    return {"setting": name, **made, "judged": judged, "fid_kid": quality, "seconds_this_run": seconds}


def alternating_cost(pipe: DiffDisPipeline, prompts: list[str], rounds: int = 3) -> dict[str, dict]:
    """Seconds per prompt of every setting, measured in one process with the settings alternating."""
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(rounds):
        for name, options in SETTINGS.items():
            started = time.perf_counter()
            pipe.generate(prompts, **{**BASE, **options})
            times[name].append((time.perf_counter() - started) / len(prompts))
    return {
        name: {"median_s_per_prompt": sorted(v)[len(v) // 2], "min": min(v), "max": max(v), "rounds": rounds}
        for name, v in times.items()
    }


def run(model: str | Path, out: str | Path, per_class: int = 25, seed: int = 0, data_dir: str | None = None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = DiffDisPipeline.from_pretrained(model)
    if pipe.vocabulary is None or pipe.vocabulary.get("data") != "fashion-mnist":
        raise ValueError(f"{model} was not trained on Fashion-MNIST (its vocabulary.json says so when it was)")
    config = pipe.config
    m, t = config.model, config.train
    root = data_dir or t.data_dir
    train_full = load_fashion_mnist("train", m.resolution, m.image_channels, root)
    _, val = train_val_split(train_full, t.val_size, t.seed)  # the model's own held-out validation images
    test = load_fashion_mnist("test", m.resolution, m.image_channels, root)  # read only for the judge's own accuracy
    judge_cache = Path(model).parent / "cache"  # the demo's trained judge, when the model is the demo's
    judge, judge_record = cached_judge("fashion-mnist", train_full, test, judge_cache if judge_cache.exists() else out)
    extractor = InceptionFeatures("fid-helper")
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"settings": {}}
    for name, options in SETTINGS.items():
        if name in results["settings"]:
            continue
        print(f"[self-check] {name}", flush=True)
        results["settings"][name] = measure(pipe, name, options, judge, val.images, extractor, out, per_class, seed)
        write_json(results_path, results)
    if "cost" not in results:
        prompts = [f"a photo of a {n}." for n in list(pipe.vocabulary["classes"])[:8]]
        results["cost"] = {"prompts": len(prompts), "per_setting": alternating_cost(pipe, prompts)}
    results.update(
        model=str(model),
        judge=judge_record,
        fid_reference=f"{len(val)} validation images held out of the training split (seed {t.seed})",
        per_class=per_class,
        seed=seed,
        environment=environment(),
    )
    write_json(results_path, results)
    bars = {n: (r["judged"]["generation_accuracy"], 0.0) for n, r in results["settings"].items()}
    bar_chart(bars, "judged generation accuracy (%) by setting").save(out / "judged.png")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/demo/model", help="a Fashion-MNIST-trained pipeline")
    parser.add_argument("--out", default="runs/self-check", help="output folder (default runs/self-check)")
    parser.add_argument("--per-class", type=int, default=25, help="samples per class and setting (default 25)")
    args = parser.parse_args()
    results = run(args.model, args.out, args.per_class)
    for name, r in results["settings"].items():
        cost = results["cost"]["per_setting"][name]["median_s_per_prompt"]
        print(
            f"{name:34s} judged {r['judged']['generation_accuracy']:5.1f}%  FID {r['fid_kid']['fid']:6.1f}  "
            f"{1000 * cost:7.1f} ms/prompt"
        )


if __name__ == "__main__":
    main()
