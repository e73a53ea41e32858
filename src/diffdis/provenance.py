"""Provenance: the command, code version and package versions that made a result, recorded in every result
file and in every training run (one entry per invocation, so a resumed run names each code that trained it)."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import torch


def environment() -> dict[str, str]:
    packages = ("diffdis", "torch", "diffusers", "transformers", "accelerate")
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch_threads": str(torch.get_num_threads()),
        **{p: version(p) for p in packages},
    }


@functools.cache  # the code this process loaded: a commit made while it runs does not change it
def code_version() -> str:
    """The commit of the code that is running (`git describe --always --dirty` in the package's folder), or
    "unknown" when the package is not in a checkout."""
    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,  # this package's checkout, wherever the process runs from
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return found.stdout.strip() or "unknown"


def command_line() -> str:
    """How this process was started, as a user would type it (`diffdis ...` for the command-line entry point)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    program = "diffdis" if program in ("diffdis", "cli.py", "__main__.py") else program
    return " ".join([program, *sys.argv[1:]])


def provenance() -> dict:
    """The command, code version and environment of this process."""
    return {"command": command_line(), "code": code_version(), "environment": environment()}
