"""What each run of the comparison study is: its block, as one record (the run's overrides of the tiny preset,
its number of steps, its learning-curve scorers, how the trained model is measured, the report's columns), and
its model row. A new block is one entry in BLOCKS; compare.py only says in which order runs are made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config, preset
from ..data.builtin import data_overrides
from ..data.datasets import FASHION_MNIST_CLASSES
from ..training import train
from .compare_emoji import EMOJI_SETTINGS, INITIALISED, QUICK_OVERRIDES, EmojiEvaluation, EmojiPlan, query_overrides
from .compare_eval import Context, curve_scorer, evaluate_fashion, evaluate_shapes
from .emoji_settings import RELEASE_OVERRIDES

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
    # REPA (repa.py) as the third edition's pre-registration fixes it: the mid block, weight 0.5, Lite0's features
    "diffdis-repa": ("train.align_weight=0.5", "train.align_layer=mid"),
    "clip-repa": ("model.variant=clip", "train.align_weight=0.5", "train.align_layer=mid"),
}
SETTINGS = ("gamma-0.3", "gamma-3", "epsilon")  # the query's scale γ and its parameterisation
QUERY_ONLY = ("regression", "fusion-mid", "fusion-none", *SETTINGS)  # change the query path alone: no generation
CURVE_POINTS = 5  # validations per run (learning curves)


@dataclass(frozen=True)
class StudyRun:
    block: str  # a key of BLOCKS
    model: str  # a key of MODELS, or of emoji-query's rows
    seed: int

    @property
    def name(self) -> str:
        return f"{self.block}/{self.model}-seed{self.seed}"

    def overrides(self, out: Path) -> list[str]:
        """This run's changes to the tiny preset; `out` is the study folder (a block may start from a model
        another block saved there)."""
        return BLOCKS[self.block].overrides(self, out)


@dataclass
class Study:
    """What one invocation of the study shares between its runs: where it writes, the evaluation budget, how long
    runs train, and the emoji evaluation (its data and judge), built by the first emoji run."""

    out: Path
    ctx: Context
    steps: int = 250  # the first edition's runs (unless budget_minutes)
    budget_minutes: float | None = None
    emoji: EmojiPlan = field(default_factory=EmojiPlan)
    extra: list[str] = field(default_factory=list)  # overrides of every run
    _emoji_evaluation: EmojiEvaluation | None = field(default=None, init=False, repr=False)

    def emoji_evaluation(self, config: Config) -> EmojiEvaluation:
        if self._emoji_evaluation is None:
            self._emoji_evaluation = EmojiEvaluation(self.ctx, config.model.resolution, self.emoji)
        return self._emoji_evaluation


@dataclass(frozen=True)
class Block:
    """One block of the study: everything that differs between blocks, in one place."""

    overrides: Callable[[StudyRun, Path], list[str]]  # the run's changes to the tiny preset
    steps: Callable[[StudyRun, Study], int]  # how long the run trains
    scorers: Callable[[Config, Study], tuple]  # train(scorers=...): the learning-curve points
    evaluate: Callable[[object, Config, Study, Path, StudyRun], dict]  # (pipe, config, study, run dir, run) -> figures
    columns: str  # the report's columns, chance line and headline (compare_report.COLUMNS)
    quick: tuple[str, ...] = ()  # more overrides when the emoji plan is quick (tests)
    recipe: tuple[str, ...] = ()  # overrides of run_config's own (its warm-up, for one)


def holdout_triples() -> dict[str, tuple[str, ...]]:
    """Two disjoint triples of Fashion-MNIST classes, drawn by a fixed seed (not picked by hand)."""
    order = np.random.default_rng(0).permutation(len(FASHION_MNIST_CLASSES))
    return {
        "unseen-A": tuple(FASHION_MNIST_CLASSES[k] for k in sorted(order[:3])),
        "unseen-B": tuple(FASHION_MNIST_CLASSES[k] for k in sorted(order[3:6])),
    }


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


# The first edition: Fashion-MNIST (seen classes, or three held out) and shapes; equal steps or equal wall clock.


def _first_edition_overrides(run: StudyRun, out: Path) -> list[str]:
    data = "shapes" if run.block == "shapes" else "fashion-mnist"
    held = holdout_triples().get(run.block)
    extra = [f"train.holdout_classes={','.join(held)}"] if held else []
    return [*data_overrides(data), *MODELS[run.model], *extra]


def _first_edition_steps(run: StudyRun, study: Study) -> int:
    if study.budget_minutes:
        return budget_steps(run, study.budget_minutes, study.out, study.extra)
    return study.steps


def _fashion_scorers(config: Config, study: Study) -> tuple:
    unseen = [FASHION_MNIST_CLASSES.index(n) for n in config.train.holdout_classes]
    return (curve_scorer(config, study.ctx, unseen),)


def _evaluate_fashion(pipe, config: Config, study: Study, run_dir: Path, run: StudyRun) -> dict:
    return evaluate_fashion(pipe, config, study.ctx, run_dir, generation=run.model not in QUERY_ONLY)


def _evaluate_shapes(pipe, config: Config, study: Study, run_dir: Path, run: StudyRun) -> dict:
    return evaluate_shapes(pipe, config, study.ctx)


# The second edition: emoji names, a generation-only model pretrained on them, and what starts from it.

PRETRAIN = StudyRun("emoji-pretrain", "gen", 0)


def _emoji_overrides(run: StudyRun, out: Path) -> list[str]:
    model = MODELS[run.model] if run.model in MODELS else query_overrides(run.model)
    init = [f"train.init_from={out / 'runs' / PRETRAIN.name / 'model'}"] if run.block in INITIALISED else []
    return [*EMOJI_SETTINGS, *model, *init]


def _emoji_scorers(config: Config, study: Study) -> tuple:
    return (study.emoji_evaluation(config).curve_scorer(),)


def _evaluate_emoji(pipe, config: Config, study: Study, run_dir: Path, run: StudyRun) -> dict:
    return study.emoji_evaluation(config).evaluate(pipe, config, run_dir)


def _emoji_block(pretraining: bool = False, columns: str = "emoji") -> Block:
    return Block(
        overrides=_emoji_overrides,
        steps=lambda run, study: study.emoji.pretrain_steps if pretraining else study.emoji.steps,
        scorers=_emoji_scorers,
        evaluate=_evaluate_emoji,
        columns=columns,
        quick=QUICK_OVERRIDES,
    )


def _first_edition_block(columns: str, curves: bool = True) -> Block:
    return Block(
        overrides=_first_edition_overrides,
        steps=_first_edition_steps,
        scorers=_fashion_scorers if curves else lambda config, study: (),
        evaluate=_evaluate_shapes if columns == "shapes" else _evaluate_fashion,
        columns=columns,
    )


# The third edition (docs/study.md, pre-registered before its first run): the released model's recipe; a generator,
# then DiffDis and clip fine-tuned from it or trained from scratch on the same number of image presentations, with
# and without REPA.

GENERATOR = StudyRun("emoji3-generator", "gen", 0)
# The released model's recipe beside EMOJI_SETTINGS: its warm-up (the preset's, which run_config replaces) and EMA.
RELEASE_RECIPE = ("train.warmup_steps=100", *(o for o in RELEASE_OVERRIDES if o.startswith("train.ema_decay=")))
HEADLINE_ROWS = ("diffdis", "clip")  # the 2 x 2 of the one pre-registered test
REPA_ROWS = ("diffdis-repa", "clip-repa")  # exploratory


def _third_overrides(run: StudyRun, out: Path) -> list[str]:
    init = [f"train.init_from={out / 'runs' / GENERATOR.name / 'model'}"] if run.block == "emoji3-pretrained" else []
    return [*EMOJI_SETTINGS, *MODELS[run.model], *init]


def _third_block(steps: Callable[[EmojiPlan], int]) -> Block:
    return Block(
        overrides=_third_overrides,
        steps=lambda run, study: steps(study.emoji),
        scorers=_emoji_scorers,
        evaluate=_evaluate_emoji,
        columns="emoji",
        quick=QUICK_OVERRIDES,
        recipe=RELEASE_RECIPE,
    )


BLOCKS: dict[str, Block] = {
    "fashion": _first_edition_block("fashion"),
    "unseen-A": _first_edition_block("unseen"),
    "unseen-B": _first_edition_block("unseen"),
    "shapes": _first_edition_block("shapes", curves=False),
    PRETRAIN.block: _emoji_block(pretraining=True),
    "emoji-query": _emoji_block(columns="emoji-query"),
    "emoji-pretrained": _emoji_block(),
    "emoji-scratch": _emoji_block(),
    GENERATOR.block: _third_block(lambda plan: plan.generator_steps),
    "emoji3-pretrained": _third_block(lambda plan: plan.finetune_steps),
    "emoji3-scratch": _third_block(lambda plan: plan.generator_steps + plan.finetune_steps),
}
