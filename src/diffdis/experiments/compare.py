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

and, second edition, the emoji blocks (compare_emoji.py): a generation-only model pretrained on the emoji
training split, then DiffDis and its baselines fine-tuned from its UNet and trained from scratch, and the query
scale γ with diffusion against regression, on 1,212 seen and 143 unseen concept names.

A run's figures go to OUT/runs/BLOCK/MODEL-seedS/result.json as soon as it is measured; a restarted study
skips runs with a result and resumes a half-trained run from its checkpoint. The tables are rebuilt from
every result found (compare_report.py).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import Config, preset
from ..data.builtin import data_overrides
from ..data.datasets import FASHION_MNIST_CLASSES
from ..evaluation.fid import InceptionFeatures
from ..pipeline import DiffDisPipeline
from ..provenance import provenance
from ..training import train
from ..utils.results import write_json
from .compare_cost import alternating_costs
from .compare_emoji import (
    EMOJI_BLOCKS,
    EMOJI_MODELS,
    EMOJI_SETTINGS,
    GAMMAS,
    INITIALISED,
    QUICK_OVERRIDES,
    EmojiEvaluation,
    EmojiPlan,
    chosen_gamma,
    gamma_name,
    query_overrides,
    query_rows,
)
from .compare_eval import Budget, Context, curve_scorer, evaluate_fashion, evaluate_shapes, per_template_check
from .compare_report import load_results, write_report

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
ALL_BLOCKS = (*BLOCKS, *EMOJI_BLOCKS)
ALL_MODELS = (*MODELS, *(row for row in query_rows() if row not in MODELS))


def holdout_triples() -> dict[str, tuple[str, ...]]:
    """Two disjoint triples of Fashion-MNIST classes, drawn by a fixed seed (not picked by hand)."""
    order = np.random.default_rng(0).permutation(len(FASHION_MNIST_CLASSES))
    return {
        "unseen-A": tuple(FASHION_MNIST_CLASSES[k] for k in sorted(order[:3])),
        "unseen-B": tuple(FASHION_MNIST_CLASSES[k] for k in sorted(order[3:6])),
    }


@dataclass(frozen=True)
class StudyRun:
    block: str  # fashion, unseen-A, unseen-B, shapes, or an emoji block (EMOJI_BLOCKS)
    model: str  # a key of MODELS, or of emoji-query's rows
    seed: int

    @property
    def name(self) -> str:
        return f"{self.block}/{self.model}-seed{self.seed}"

    @property
    def emoji(self) -> bool:
        return self.block in EMOJI_BLOCKS

    def overrides(self, out: Path) -> list[str]:
        """This run's changes to the tiny preset; `out` is the study folder (emoji runs start from its
        pretrained model)."""
        if self.emoji:
            model = query_overrides(self.model) if self.model not in MODELS else MODELS[self.model]
            init = [f"train.init_from={out / 'runs' / PRETRAIN.name / 'model'}"] if self.block in INITIALISED else []
            return [*EMOJI_SETTINGS, *model, *init]
        data = "shapes" if self.block == "shapes" else "fashion-mnist"
        held = holdout_triples().get(self.block)
        extra = [f"train.holdout_classes={','.join(held)}"] if held else []
        return [*data_overrides(data), *MODELS[self.model], *extra]


PRETRAIN = StudyRun("emoji-pretrain", "gen", 0)


def study_runs(seeds: tuple[int, ...], blocks: tuple[str, ...] = (), models: tuple[str, ...] = ()) -> list[StudyRun]:
    """The first edition's runs in the order they run (module docstring); `blocks` and `models` keep only the
    named ones."""
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


def emoji_runs(plan: EmojiPlan, out: Path, blocks: tuple[str, ...] = (), models: tuple[str, ...] = ()):
    """The emoji blocks in the order they run, yielded one at a time: the pretraining, the query block, then per
    seed the pretrained and from-scratch models, so that every seed measured is a complete pairing. The
    pretrained block's query-scale rows wait for the query block's validation choice of γ."""
    keep = lambda run: (not blocks or run.block in blocks) and (not models or run.model in models)  # noqa: E731
    if not blocks or set(blocks) & {PRETRAIN.block, *INITIALISED}:  # what the initialised blocks start from
        yield PRETRAIN
    for seed in plan.query_seeds:  # γ = 1 is the pretrained block's own DiffDis and regression: run those first
        yield from filter(keep, (StudyRun("emoji-pretrained", row, seed) for row in ("diffdis", "regression")))
        yield from filter(keep, (StudyRun("emoji-query", row, seed) for row in query_rows() if row not in MODELS))
    for seed in plan.seeds:
        gamma = _chosen_gamma(out, plan.query_seeds)
        extra = (gamma_name(gamma),) if gamma not in (None, 1.0) else ()
        pretrained = ("diffdis", "clip", *extra, "regression", "dis", "gen")
        for block, rows in (("emoji-pretrained", pretrained), ("emoji-scratch", EMOJI_MODELS)):
            yield from filter(keep, (StudyRun(block, row, seed) for row in rows))


def _chosen_gamma(out: Path, seeds: tuple[int, ...]) -> float | None:
    """The query scale chosen from the results in `out` so far (γ = 1's runs are emoji-pretrained's)."""
    return chosen_gamma({**_measured(out, "emoji-pretrained"), **_measured(out, "emoji-query")}, seeds)


def _measured(out: Path, block: str) -> dict[str, list[dict]]:
    """row -> its result records in `block` so far."""
    found: dict[str, list[dict]] = {}
    for path in sorted((out / "runs" / block).glob("*/result.json")):
        record = json.loads(path.read_text())
        found.setdefault(record["model"], []).append(record)
    return found


def run_config(run: StudyRun, steps: int, extra: list[str], out: Path = Path("runs/compare")) -> Config:
    """The tiny preset as this run trains: warm-up 5% of the run, the cosine ending at its last step, a
    validation (learning-curve point) and a checkpoint every fifth of it."""
    every = max(1, steps // CURVE_POINTS)
    return preset(
        "tiny",
        [
            *run.overrides(out),
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
    config = run_config(run, probe, [*extra, "train.validate_every=0", "train.checkpoint_every=1000000"], out)
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
    emoji: EmojiPlan | None = None,
) -> dict:
    """Train and measure every run of the study not yet measured (none with `report_only`), then write the report
    from all results found. `steps`, `budget_minutes` and `seeds` are the first edition's; `emoji` plans the
    emoji blocks (default EmojiPlan())."""
    unknown = [b for b in blocks if b not in ALL_BLOCKS] + [m for m in models if m not in ALL_MODELS]
    if unknown:
        raise ValueError(f"unknown {unknown}; blocks are {', '.join(ALL_BLOCKS)}, models {', '.join(ALL_MODELS)}")
    emoji = emoji or EmojiPlan()
    for name, value in (("steps", steps), ("pretrain steps", emoji.pretrain_steps), ("emoji steps", emoji.steps)):
        if value < 1:
            raise ValueError(f"{name} {value}; give at least 1")
    out, extra = Path(out), list(overrides or [])
    ctx = Context(budget or Budget(), out / "cache", InceptionFeatures(inception))
    evaluation: EmojiEvaluation | None = None
    started = time.perf_counter()
    runs = itertools.chain(study_runs(seeds, blocks, models), emoji_runs(emoji, out, blocks, models))
    for run in () if report_only else runs:
        run_dir = out / "runs" / run.name
        if (run_dir / "result.json").exists():
            continue
        if run.emoji:
            n = emoji.pretrain_steps if run == PRETRAIN else emoji.steps
        else:
            n = budget_steps(run, budget_minutes, out, extra) if budget_minutes else steps
        config = run_config(run, n, [*extra, *(QUICK_OVERRIDES if run.emoji and emoji.quick else ())], out)
        if run.emoji:
            evaluation = evaluation or EmojiEvaluation(ctx, config.model.resolution, emoji)
            scorers = (evaluation.curve_scorer(),)
        else:
            unseen = () if run.block in ("fashion", "shapes") else config.train.holdout_classes
            scorers = () if run.block == "shapes" else (curve_scorer(config, ctx, _indices(unseen)),)
        print(f"[compare] {run.name}: training {n} steps", flush=True)
        began = time.perf_counter()
        model_dir = train(config, run_dir, progress=progress, scorers=scorers)
        trained = time.perf_counter() - began
        pipe = DiffDisPipeline.from_pretrained(model_dir)
        if run.emoji:
            figures = evaluation.evaluate(pipe, config, run_dir)
        elif run.block == "shapes":
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
            "training_log": log_summary(run_dir),
            "trained_by": summary["trained_by"],
            "config": config.to_dict(),
            "model_dir": str(model_dir.relative_to(out)),  # relative to the study folder, which may move
            "evaluated_by": provenance(),
            **figures,
        }
        write_json(run_dir / "result.json", record)
        print(f"[compare] {run.name}: done in {time.perf_counter() - began:.0f} s", flush=True)
    settings = {
        **provenance(),
        "steps": steps,
        "budget_minutes": budget_minutes,
        "seeds": list(seeds),
        "emoji": {
            **asdict(emoji),
            "gammas": list(GAMMAS),
            "chosen_gamma": _chosen_gamma(out, emoji.query_seeds),
            "settings": list(EMOJI_SETTINGS),
        },
        "blocks": list(blocks) or "all",
        "models": list(models) or "all",
        "holdout_triples": holdout_triples(),
        "groups": {
            "models": BASELINES,
            "ablations": ABLATIONS,
            "settings": SETTINGS,
            "query": tuple(row for row in query_rows() if row not in MODELS),
        },
        "budget": vars(ctx.budget),
        "inception": inception,
        "overrides": extra,
        "evaluation_seed": ctx.seed,
        "this_invocation_seconds": time.perf_counter() - started,
    }
    fashion = load_results(out).get("fashion", {})
    b = ctx.budget
    return write_report(out, settings, alternating_costs(out, fashion, BASELINES, b.cost_rounds, b.cost_images))


def dc_template_check(out: str | Path = "runs/compare", seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Retrain the fashion block's gen runs (same config and seed, into OUT/dc-templates) and score their
    Diffusion Classifier at 8 timesteps both ways (compare_eval.per_template_check): whether the averaged
    condition the study used costs accuracy. Writes OUT/dc_templates.json."""
    out = Path(out)
    found = {}
    for seed in seeds:
        run = StudyRun("fashion", "gen", seed)
        recorded = json.loads((out / "runs" / run.name / "result.json").read_text())
        config = run_config(run, recorded["steps"], [], out)
        model_dir = train(config, out / "dc-templates" / f"gen-seed{seed}", progress=False)
        pipe = DiffDisPipeline.from_pretrained(model_dir)
        found[seed] = per_template_check(pipe, config, recorded["diffusion_classifier"]["8"])
    what = "Diffusion Classifier (8 timesteps) of the fashion gen runs, retrained: averaged condition vs per template"
    record = {**provenance(), "what": what, "seeds": found}
    write_json(out / "dc_templates.json", record)
    return record


def log_summary(run_dir: Path, parts: int = CURVE_POINTS) -> list[dict]:
    """The run's text log in `parts` consecutive stretches: per stretch its last step and the mean of every
    logged scalar (losses, per-loss gradient norms where logged, logit scale, speed)."""
    lines = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    out = []
    for chunk in np.array_split(np.arange(len(lines)), min(parts, len(lines))):
        rows = [lines[i] for i in chunk]
        keys = [k for k in rows[0] if k != "step" and isinstance(rows[0][k], (int, float))]
        out.append({"step": rows[-1]["step"], **{k: float(np.mean([r.get(k, np.nan) for r in rows])) for k in keys}})
    return out


def _indices(names: tuple[str, ...]) -> list[int]:
    return [FASHION_MNIST_CLASSES.index(n) for n in names]
