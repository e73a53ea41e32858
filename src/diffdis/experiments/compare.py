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

Third edition (pre-registered in docs/study.md): the released model's recipe; a generator (emoji3-generator),
then DiffDis and clip fine-tuned from it (emoji3-pretrained) or trained from scratch for the generator's steps and
the fine-tuning's together (emoji3-scratch), five seeds, then the same four arms with REPA. Its analysis
(concept_intervals.py) runs only once the whole 2 x 2 is measured.

What a run of each block is (its overrides, steps, curve scorers, evaluation, report columns) is one record in
compare_blocks.py; this module says in which order runs are made. A run's figures go to
OUT/runs/BLOCK/MODEL-seedS/result.json as soon as it is measured; a restarted study
skips runs with a result and resumes a half-trained run from its checkpoint. The tables are rebuilt from
every result found (compare_report.py).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..evaluation.fid import InceptionFeatures
from ..pipeline import DiffDisPipeline
from ..provenance import provenance
from ..training import train
from ..utils.results import write_json
from .compare_blocks import (
    BLOCKS,
    CURVE_POINTS,
    GENERATOR,
    HEADLINE_ROWS,
    MODELS,
    PRETRAIN,
    REPA_ROWS,
    SETTINGS,
    Study,
    StudyRun,
    holdout_triples,
    run_config,
)
from .compare_cost import alternating_costs
from .compare_emoji import (
    EMOJI_MODELS,
    EMOJI_SETTINGS,
    GAMMAS,
    INITIALISED,
    EmojiPlan,
    chosen_gamma,
    gamma_name,
    query_rows,
)
from .compare_eval import Budget, Context, per_template_check
from .compare_report import load_results, write_report

BASELINES = ("diffdis", "gen", "dis", "clip")
ABLATIONS = ("regression", "fusion-mid", "fusion-none", "lam-0.3", "lam-3", "clip-per-loss")
ALL_MODELS = (*MODELS, *(row for row in query_rows() if row not in MODELS))


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


THIRD_BLOCKS = ("emoji3-pretrained", "emoji3-scratch")


def third_runs(plan: EmojiPlan, blocks: tuple[str, ...] = (), models: tuple[str, ...] = ()):
    """The third edition in the order it runs: the generator, the 2 x 2 seed by seed (each seed a complete
    pairing), then its REPA arms."""
    keep = lambda run: (not blocks or run.block in blocks) and (not models or run.model in models)  # noqa: E731
    if not blocks or set(blocks) & {GENERATOR.block, "emoji3-pretrained"}:
        yield GENERATOR
    for rows in (HEADLINE_ROWS, REPA_ROWS):
        for seed in plan.third_seeds:
            yield from filter(keep, (StudyRun(block, row, seed) for block in THIRD_BLOCKS for row in rows))


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
    unknown = [b for b in blocks if b not in BLOCKS] + [m for m in models if m not in ALL_MODELS]
    if unknown:
        raise ValueError(f"unknown {unknown}; blocks are {', '.join(BLOCKS)}, models {', '.join(ALL_MODELS)}")
    emoji = emoji or EmojiPlan()
    for name, value in (("steps", steps), ("pretrain steps", emoji.pretrain_steps), ("emoji steps", emoji.steps)):
        if value < 1:
            raise ValueError(f"{name} {value}; give at least 1")
    out, extra = Path(out), list(overrides or [])
    ctx = Context(budget or Budget(), out / "cache", InceptionFeatures(inception))
    study = Study(out, ctx, steps, budget_minutes, emoji, extra)
    started = time.perf_counter()
    runs = itertools.chain(
        study_runs(seeds, blocks, models), emoji_runs(emoji, out, blocks, models), third_runs(emoji, blocks, models)
    )
    for run in () if report_only else runs:
        if not (out / "runs" / run.name / "result.json").exists():
            _measure(run, study, *_train(run, study, progress))
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


def _train(run: StudyRun, study: Study, progress: bool) -> tuple:
    """Train `run` (or resume it) -> (its config, model folder, wall seconds of this invocation's training)."""
    block, run_dir = BLOCKS[run.block], study.out / "runs" / run.name
    n = block.steps(run, study)
    config = run_config(run, n, [*block.recipe, *study.extra, *(block.quick if study.emoji.quick else ())], study.out)
    print(f"[compare] {run.name}: training {n} steps", flush=True)
    began = time.perf_counter()
    model_dir = train(config, run_dir, progress=progress, scorers=block.scorers(config, study))
    return config, model_dir, time.perf_counter() - began


def _measure(run: StudyRun, study: Study, config, model_dir: Path, trained: float) -> None:
    """Measure a trained run and write its result.json, with how it was trained and measured."""
    run_dir, began = study.out / "runs" / run.name, time.perf_counter()
    figures = BLOCKS[run.block].evaluate(DiffDisPipeline.from_pretrained(model_dir), config, study, run_dir, run)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    record = {
        "block": run.block,
        "model": run.model,
        "seed": run.seed,
        "steps": summary["steps"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": {"train": trained, "evaluate": time.perf_counter() - began},
        "curve": summary["validation"],
        "training_log": log_summary(run_dir),
        "trained_by": summary["trained_by"],
        "config": config.to_dict(),
        "model_dir": str(model_dir.relative_to(study.out)),  # relative to the study folder, which may move
        "evaluated_by": provenance(),
        **figures,
    }
    write_json(run_dir / "result.json", record)
    print(f"[compare] {run.name}: measured in {time.perf_counter() - began:.0f} s", flush=True)


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
