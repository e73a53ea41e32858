"""The released models: trained pipelines shipped inside the package, listed by name and loaded by name.

Each lives in `released/NAME/` as an ordinary saved pipeline (fp16 safetensors, its model card README.md and
`release.json`: what it knows, how it was trained and its measured figures with their result file). A name is
accepted wherever a model folder is (`DiffDisPipeline.from_pretrained`, every `--model` of the command line, the
web app); a folder on disk with the same name as a release wins, so a user's own `emoji-16/` is never shadowed.
"""

from __future__ import annotations

import json
from pathlib import Path

RELEASED_DIR = Path(__file__).parent / "released"
RELEASE_NAME = "release.json"  # in each released folder: name, summary, resolution, knows, figures, training


def released_folders() -> dict[str, Path]:
    """name -> folder of every model shipped with this installation."""
    if not RELEASED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(RELEASED_DIR.iterdir()) if (p / RELEASE_NAME).is_file()}


def list_pretrained() -> list[dict]:
    """The released models, each as its `release.json`: name, summary, resolution, what it knows, its figures."""
    return [json.loads((folder / RELEASE_NAME).read_text()) for folder in released_folders().values()]


def resolve_model(model: str | Path) -> Path:
    """The folder of `model`: a saved pipeline folder as given, else a released model's name. Refuses anything
    else with the released names."""
    path = Path(model)
    if path.is_dir():
        return path
    folders = released_folders()
    if str(model) in folders:
        return folders[str(model)]
    names = ", ".join(folders) or "none in this installation"
    raise FileNotFoundError(
        f"{model!r} is not a saved DiffDis pipeline folder, nor a released model's name; released models: "
        f"{names} (diffdis.list_pretrained() describes them)"
    )
