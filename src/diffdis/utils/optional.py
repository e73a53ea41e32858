"""Optional dependencies: the core install generates and classifies; training, evaluation, the emoji renderer,
the pretrained image encoders and the web app each come with an extra (pyproject.toml). An import of a missing one
fails with the command that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {  # extra -> what needs it
    "train": "training (TensorBoard logs, webdataset shard patterns)",
    "eval": "evaluation (FID/KID, significance tests, charts, the digits set)",
    "emoji": "the emoji data set (its SVG renderer)",
    "prior": "the pretrained image encoders (REPA, lit)",
    "app": "the web app",
}


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """`module` imported, or an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{EXTRAS[extra]} needs {package or module.split('.')[0]}, which is not installed: "
            f'pip install "diffdis[{extra}]" (or "diffdis[all]")'
        ) from error
