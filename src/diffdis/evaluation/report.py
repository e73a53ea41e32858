"""Result files that say how they were made, and the plain-text tables printed beside them."""

from __future__ import annotations

import json
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

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


def code_version() -> str:
    """The commit of the code that is running (`git describe --always --dirty`), or "unknown" outside a checkout."""
    try:
        found = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return found.stdout.strip() or "unknown"


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, default=float) + "\n")


def table(rows: list[tuple[str, str]], title: str) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)] + [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)
