"""`diffdis compare`: the paper's claims tested at small scale, as one resumable study.

Every model trains with the same loop for the same number of steps (or, with `budget_minutes`, for the steps
its measured speed fits into the same wall-clock time); warm-up and the cosine schedule scale with the run
length. The study's blocks, in the order they run (each seed in turn, every model of a block per seed):

  fashion     DiffDis, gen, dis, clip on Fashion-MNIST (seen classes), with Diffusion-Classifier scoring
  unseen-A/B  the same with three classes held out of training (images and captions): zero-shot on them
  shapes      the same on `shapes`: compositional transfer to held-out colour-shape pairs
  ablations   DiffDis with the query trained by regression (t_e = T-1), fusion in the mid block only or not
              at all, λ = 0.3 and 3, per-loss gradient clipping (Fashion-MNIST; regression also unseen-A, shapes)
  settings    DiffDis with the query scale γ = 0.3 and 3, and ε-prediction of the query (Fashion-MNIST)

A run's figures go to OUT/runs/BLOCK/MODEL-seedS/result.json as soon as it is measured; a restarted study
skips runs with a result and resumes a half-trained run from its checkpoint. The tables are rebuilt from
every result found (compare_report.py).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config, data_overrides, preset
from ..data.datasets import FASHION_MNIST_CLASSES
from ..evaluation.fid import InceptionFeatures
from ..evaluation.report import code_version, environment, write_json
from ..pipeline import DiffDisPipeline
from ..training import train
from .compare_eval import Budget, Context, curve_scorer, evaluate_fashion, evaluate_shapes
from .compare_report import write_report

MODELS: dict[str, tuple[str, ...]] = {  # row name -> its overrides of the tiny preset
    "diffdis": (),
    "gen": ("model.variant=gen",),
    "dis": ("model.variant=dis",),
    "clip": ("model.variant=clip",),
    "regression": ("model.query_training=regression",),
    "fusion-mid": ("model.fusion=mid",),
    "fusion-none": ("model.fusion=none",),
    "lam-0.3": ("train.lam=0.3",),
    "lam-3": ("train.lam=3",),
    "clip-per-loss": ("train.clip_per_loss=true",),
    "gamma-0.3": ("model.gamma=0.3",),
    "gamma-3": ("model.gamma=3",),
    "epsilon": ("model.text_prediction=epsilon",),
}
BLOCKS = ("fashion", "unseen-A", "unseen-B", "shapes")
BASELINES = ("diffdis", "gen", "dis", "clip")
ABLATIONS = ("regression", "fusion-mid", "fusion-none", "lam-0.3", "lam-3", "clip-per-loss")
SETTINGS = ("gamma-0.3", "gamma-3", "epsilon")  # the query's scale γ and its parameterisation
QUERY_ONLY = (
    "regression",
    "fusion-mid",
    "fusion-none",
    *SETTINGS,
)  # change the query path alone: no generation figures
CURVE_POINTS = 5  # validations per run (learning curves)


def holdout_triples() -> dict[str, tuple[str, ...]]:
    """Two disjoint triples of Fashion-MNIST classes, drawn by a fixed seed (not picked by hand)."""
    order = np.random.default_rng(0).permutation(len(FASHION_MNIST_CLASSES))
    return {
        "unseen-A": tuple(FASHION_MNIST_CLASSES[k] for k in sorted(order[:3])),
        "unseen-B": tuple(FASHION_MNIST_CLASSES[k] for k in sorted(order[3:6])),
    }


@dataclass(frozen=True)
class StudyRun:
    block: str  # fashion, unseen-A, unseen-B, shapes
    model: str  # a key of MODELS
    seed: int

    @property
    def name(self) -> str:
        return f"{self.block}/{self.model}-seed{self.seed}"

    def overrides(self) -> list[str]:
        data = "shapes" if self.block == "shapes" else "fashion-mnist"
        held = holdout_triples().get(self.block)
        extra = [f"train.holdout_classes={','.join(held)}"] if held else []
        return [*data_overrides(data), *MODELS[self.model], *extra]


def study_runs(seeds: tuple[int, ...], blocks: tuple[str, ...] = (), models: tuple[str, ...] = ()) -> list[StudyRun]:
    """The study in the order it runs (module docstring); `blocks` and `models` keep only the named ones."""
    plan = [
        ("fashion", BASELINES),
        ("unseen-A", ("diffdis", "dis", "clip", "gen")),
        ("unseen-B", ("diffdis", "dis", "clip", "gen")),
        ("shapes", BASELINES),
        ("fashion", ABLATIONS),
        ("unseen-A", ("regression",)),
        ("shapes", ("regression",)),
        ("fashion", SETTINGS),
    ]
    return [
        StudyRun(block, model, seed)
        for block, chosen in plan
        if not blocks or block in blocks
        for seed in seeds
        for model in chosen
        if not models or model in models
    ]


def run_config(run: StudyRun, steps: int, extra: list[str]) -> Config:
    """The tiny preset as this run trains: warm-up 5% of the run, the cosine ending at its last step, a
    validation (learning-curve point) and a checkpoint every fifth of it."""
    every = max(1, steps // CURVE_POINTS)
    return preset(
        "tiny",
        [
            *run.overrides(),
            f"train.seed={run.seed}",
            f"train.max_steps={steps}",
            f"train.warmup_steps={max(1, round(0.05 * steps))}",
            f"train.validate_every={every}",
            f"train.checkpoint_every={every}",
            "train.val_images=300",
            "train.captions=fixed",  # the study's runs all train on one name per class, as its first runs did
            *extra,
        ],
    )


def budget_steps(run: StudyRun, minutes: float, out: Path, extra: list[str], probe: int = 10) -> int:
    """The steps of `run` that fit into `minutes`, from the optimizer-step speed of a short probe run (start-up
    and validation excluded), so that each model's schedule still ends at its last step under an equal
    wall-clock budget."""
    probe_dir = out / "probe" / run.block / run.model
    config = run_config(run, probe, [*extra, "train.validate_every=0", "train.checkpoint_every=1000000"])
    if not (probe_dir / "train_summary.json").exists():
        train(config, probe_dir, progress=False)
    last = json.loads((probe_dir / "train_log.jsonl").read_text().splitlines()[-1])
    seconds_per_step = config.train.batch_size / last["images_per_second"]
    return max(1, int(60 * minutes / seconds_per_step))


def run_compare(
    out: str | Path = "runs/compare",
    steps: int = 250,
    budget_minutes: float | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    blocks: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
    budget: Budget | None = None,
    inception: str = "fid-helper",
    overrides: list[str] | None = None,
    progress: bool = True,
    report_only: bool = False,
) -> dict:
    """Train and measure every run of the study not yet measured (none with `report_only`), then write the report
    from all results found."""
    out, extra = Path(out), list(overrides or [])
    ctx = Context(budget or Budget(), out / "cache", InceptionFeatures(inception))
    started = time.perf_counter()
    for run in () if report_only else study_runs(seeds, blocks, models):
        run_dir = out / "runs" / run.name
        if (run_dir / "result.json").exists():
            continue
        n = budget_steps(run, budget_minutes, out, extra) if budget_minutes else steps
        config = run_config(run, n, extra)
        unseen = () if run.block in ("fashion", "shapes") else config.train.holdout_classes
        scorers = () if run.block == "shapes" else (curve_scorer(config, ctx, _indices(unseen)),)
        print(f"[compare] {run.name}: training {n} steps", flush=True)
        began = time.perf_counter()
        model_dir = train(config, run_dir, progress=progress, scorers=scorers)
        trained = time.perf_counter() - began
        pipe = DiffDisPipeline.from_pretrained(model_dir)
        if run.block == "shapes":
            figures = evaluate_shapes(pipe, config, ctx)
        else:
            figures = evaluate_fashion(pipe, config, ctx, run_dir, generation=run.model not in QUERY_ONLY)
        summary = json.loads((run_dir / "train_summary.json").read_text())
        record = {
            "block": run.block,
            "model": run.model,
            "seed": run.seed,
            "steps": summary["steps"],
            "train_seconds": summary["train_seconds"],
            "wall_seconds": {"train": trained, "evaluate": time.perf_counter() - began - trained},
            "curve": summary["validation"],
            "config": config.to_dict(),
            "model_dir": str(model_dir.relative_to(out)),  # relative to the study folder, which may move
            "code": code_version(),
            **figures,
        }
        write_json(run_dir / "result.json", record)
        print(f"[compare] {run.name}: done in {time.perf_counter() - began:.0f} s", flush=True)
    settings = {
        "command": " ".join(["diffdis", *sys.argv[1:]])
        if Path(sys.argv[0]).stem in ("diffdis", "cli")
        else "run_compare",
        "steps": steps,
        "budget_minutes": budget_minutes,
        "seeds": list(seeds),
        "blocks": list(blocks) or "all",
        "models": list(models) or "all",
        "holdout_triples": holdout_triples(),
        "groups": {"models": BASELINES, "ablations": ABLATIONS, "settings": SETTINGS},
        "budget": vars(ctx.budget),
        "inception": inception,
        "overrides": extra,
        "evaluation_seed": ctx.seed,
        "this_invocation_seconds": time.perf_counter() - started,
        "code": code_version(),
        "environment": environment(),
    }
    return write_report(out, settings, ctx.budget.cost_rounds, ctx.budget.cost_images)


def _indices(names: tuple[str, ...]) -> list[int]:
    return [FASHION_MNIST_CLASSES.index(n) for n in names]
