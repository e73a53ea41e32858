"""`diffdis` command line. Each subcommand lives in one module of this package, its arguments declared beside its
handler and the handler a call into the library; COMMANDS is the list `main` offers. Heavy imports wait inside the
handlers, so that `diffdis --help` starts at once."""

from __future__ import annotations

import argparse
import os
import sys

from .app import APP
from .data import EMOJI, ENCODE, PACK
from .experiments import COMPARE, DEMO, LIT, RELEASE, SELF_CHECK
from .generate import GENERATE
from .query import CLASSIFY, EVALUATE, RETRIEVE
from .train import TRAIN

COMMANDS = (
    TRAIN,
    GENERATE,
    CLASSIFY,
    RETRIEVE,
    EVALUATE,
    COMPARE,
    RELEASE,
    LIT,
    SELF_CHECK,
    PACK,
    ENCODE,
    DEMO,
    EMOJI,
    APP,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffdis",
        description="DiffDis: text-to-image generation and image-text discrimination with one diffusion model.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.arguments(sub.add_parser(command.name, help=command.help))
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a mistake in the input exits 2 with the message, a stopped training run 3."""
    args = parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from ..config import ConfigError
    from ..data.emoji import EmojiDataError
    from ..training.errors import CheckpointError, TrainingStopped

    run = {command.name: command.run for command in COMMANDS}[args.command]
    try:
        return run(args)
    except (ConfigError, FileNotFoundError, ValueError, EmojiDataError) as error:
        print(f"diffdis {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (TrainingStopped, CheckpointError) as error:
        print(f"diffdis {args.command}: stopped: {error}", file=sys.stderr)
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()  # a clean exit for every process of a multi-process run
        return 3
