"""What the subcommands share: the Command declaration, argument types and option groups, loading a saved model
after every argument is checked, and writing results."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import QUERY_STARTS
from ..samplers import DEFAULT_SAMPLER, sampler_for, sampler_names


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and help, the function that declares its arguments, and its handler."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}; give at least 1")
    return value


def overrides_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set model.gamma=2 --set train.lam=0.5 (repeatable)",
    )


def runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cuda, cuda:1, cpu (default: cuda if available)"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="precision inference computes in (float16: GPU only; default float32)",
    )


def sampler_help(stream: str) -> str:
    described = "; ".join(f"{name}: {sampler_for(name, stream).description}" for name in sampler_names(stream))
    return f"{stream} sampler ({described}; default {DEFAULT_SAMPLER})"


def query_options(parser: argparse.ArgumentParser) -> None:
    """How the text query is sampled: steps, guidance on the image, seed, sampler and start."""
    parser.add_argument(
        "--steps", type=positive, default=None, help="text-query denoising steps (default: the pipeline's)"
    )
    parser.add_argument("--guidance", type=float, default=None, help="guidance on the image, 1 = none")
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the text query (default 0)")
    parser.add_argument("--sampler", choices=sampler_names("query"), default=None, help=sampler_help("query"))
    parser.add_argument(
        "--start",
        choices=QUERY_STARTS,
        default=None,
        help="start of the text query: Gaussian per image (default), one Gaussian for all, or zero",
    )


def query_kwargs(args: argparse.Namespace) -> dict:
    """query_options as the pipeline's keyword arguments (unset ones left to the pipeline's defaults)."""
    kwargs = {"seed": args.seed}
    if args.steps is not None:
        kwargs["num_inference_steps"] = args.steps
    if args.guidance is not None:
        kwargs["guidance_scale"] = args.guidance
    for name in ("sampler", "start"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def check_model(path: str, lit: bool = False) -> None:
    """Refuse a --model that is neither a saved pipeline folder nor a released model's name (nor, where `lit`, a
    saved locked-image baseline)."""
    from ..factory import CONFIG_NAME
    from ..lit import LIT_CONFIG
    from ..pretrained import resolve_model

    if lit and (Path(path) / LIT_CONFIG).is_file():
        return
    if not (resolve_model(path) / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"--model {path} is not a saved DiffDis pipeline ({CONFIG_NAME} is missing)")


def check_writable(path: Path, what: str) -> None:
    """Refuse an output path that cannot be written, before any work."""
    parent = path.parent if path.suffix else path
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ValueError(f"{what} {path}: cannot create files under {existing}")
    if path.suffix and path.is_dir():
        raise ValueError(f"{what} {path} is a folder; name a file, or a folder without an extension")


def load(args: argparse.Namespace):
    """The saved pipeline on --device (CUDA when available) computing in --dtype; called after every argument
    has been checked, so that a mistake costs no model loading."""
    from ..factory import default_device
    from ..lit import LIT_CONFIG, LockedImageText
    from ..pipeline import DiffDisPipeline

    if (Path(args.model) / LIT_CONFIG).is_file():  # `diffdis evaluate` scores the locked-image baseline too
        return LockedImageText.load(args.model)
    return DiffDisPipeline.from_pretrained(args.model, args.device or default_device(), args.dtype)


def write_json(path: str | None, result: dict) -> None:
    if path:
        from ..utils.results import write_json as write

        write(path, result)


def warn_unfamiliar(pipe, texts: list[str], command: str) -> None:
    for text, nearest, similarity in pipe.unfamiliar(texts):
        print(
            f"diffdis {command}: warning: {text!r} is unlike anything the model was trained on (nearest training "
            f"caption {nearest!r}, cosine {similarity:.2f}); see the class names in its vocabulary.json",
            file=sys.stderr,
        )


def report_unreadable(unreadable: dict[str, str]) -> None:
    if unreadable:
        print(f"skipped {len(unreadable)} unreadable file(s):", file=sys.stderr)
        for file, reason in unreadable.items():
            print(f"  {file}: {reason}", file=sys.stderr)
