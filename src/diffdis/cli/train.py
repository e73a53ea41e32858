"""`diffdis train`: a preset, the data and overrides -> a run folder with checkpoints and the saved pipeline."""

from __future__ import annotations

import argparse

from .common import Command, overrides_option


def arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("--preset", default="tiny", help="named configuration to start from (default: tiny)")
    t.add_argument("--out", required=True, help="run folder; the pipeline is written to OUT/model")
    t.add_argument("--max-steps", type=int, help="optimisation steps (overrides train.max_steps)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (train.checkpoint_every)")
    t.add_argument(
        "--data",
        help="training data (train.data): a built-in set (fashion-mnist, shapes, emoji; joined by '+'), or captioned "
        "files wds:SHARDS, folder:DIR (metadata.jsonl), csv:FILE joined by '+', each optionally @WEIGHT",
    )
    t.add_argument("--init-from", help="Stable Diffusion folder or .safetensors file to start from (train.init_from)")
    t.add_argument(
        "--trust-pickle", action="store_true", help="allow --init-from to be a pickled .ckpt (it can run code)"
    )
    overrides_option(t)
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..config import preset
    from ..data.builtin import data_overrides
    from ..training import train

    overrides = data_overrides(args.data) if args.data is not None else []  # before --set, which may change them
    overrides += list(args.set)
    for key, value in (("max_steps", args.max_steps), ("checkpoint_every", args.checkpoint_every)):
        if value is not None:
            overrides.append(f"train.{key}={value}")
    if args.init_from is not None:
        overrides.append(f"train.init_from={args.init_from}")
    if args.trust_pickle:
        overrides.append("train.trust_pickle=true")
    model_dir = train(preset(args.preset, overrides), args.out, progress=not args.no_progress)
    print(f"saved pipeline to {model_dir}")
    return 0


TRAIN = Command("train", "train a model (resumes automatically if OUT holds checkpoints)", arguments, run)
