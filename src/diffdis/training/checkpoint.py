"""Checkpoints of a training run: written atomically, the last K kept, read back without unpickling code, and
a corrupt or partial latest checkpoint passed over, with a warning, in favour of the one before.

    checkpoints/step_NNNNNNN/   model.safetensors, ema.safetensors (weights, never pickled)
                                optimizer.pt, lr_scheduler.pt (tensors and numbers; read with weights_only=True)
                                state.json (format, step, time, every process's data position, validation history)
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..factory import usual_permissions
from .errors import CheckpointError
from .sharding import full_optimizer_state, full_state_dict, load_full_optimizer_state, load_full_state_dict

CHECKPOINT_FORMAT = 3  # bumped when the checkpoint's contents change meaning (3: AdamW groups split by decay)
# What reading a damaged file raises (torch.load reports a cut archive as RuntimeError; state.json may lack keys:
# TypeError). Applying decoded state that does not fit raises CheckpointMismatchError instead.
_UNREADABLE = (OSError, ValueError, RuntimeError, KeyError, TypeError, EOFError, SafetensorError, pickle.PickleError)


class CheckpointFormatError(ValueError):
    """A checkpoint written by another version: not damaged, so never silently passed over."""


class CheckpointMismatchError(ValueError):
    """A readable checkpoint of another model (other shapes or modules): not damaged, never passed over."""


@dataclass
class TrainState:
    step: int = 0
    seconds: float = 0.0  # training wall time so far, summed over resumed segments
    skipped_steps: int = 0  # steps whose loss or gradient was not finite (the weights were not updated)
    data: list[dict | None] = field(default_factory=lambda: [None])  # each process's data position
    history: list[dict] = field(default_factory=list)  # validation results
    prompts: list[str] = field(default_factory=list)  # sample-grid prompts when there is no labelled set
    config_changes: list[dict] = field(default_factory=list)  # accepted on resume: step, key, from, to
    segments: list[dict] = field(default_factory=list)  # per invocation: its first step, command, code, versions


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first (a `.tmp` folder is one a crash interrupted)."""
    folder = run_dir / "checkpoints"
    if not folder.exists():
        return []
    return sorted(p for p in folder.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))


def save_checkpoint(
    accelerator, run_dir: Path, objective, optimizer, lr_schedule, ema, state: TrainState, keep: int, collective: bool
):
    """Write into step_X.tmp, then rename: a crash at any point leaves the previous checkpoints intact. Whole
    tensors in every case: with a `collective` strategy (a sharded objective) they are gathered from every process,
    and only the main process, which writes them, keeps them."""
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(objective)
    if not (accelerator.is_main_process or collective):
        return
    writes = accelerator.is_main_process  # the others take part in the gathers and keep nothing
    weights, ema_state = full_state_dict(model, writes), ema.state_dict(writes)
    optimizer_state = full_optimizer_state(optimizer, writes)
    if not writes:
        return
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RuntimeError(f"refusing to checkpoint non-finite weights at step {state.step} ({bad[:3]} ...)")
    folder = run_dir / "checkpoints"
    final, tmp = folder / f"step_{state.step:07d}", folder / f"step_{state.step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, tmp / "model.safetensors")
    save_file({k: v.contiguous() for k, v in ema_state.items()}, tmp / "ema.safetensors")
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(lr_schedule.state_dict(), tmp / "lr_scheduler.pt")
    (tmp / "state.json").write_text(json.dumps({"format": CHECKPOINT_FORMAT, **asdict(state)}, indent=2) + "\n")
    usual_permissions(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old)


def load_checkpoint(folder: Path, objective, optimizer, lr_schedule, ema) -> TrainState:
    """Read every file of `folder` (a file that cannot be decoded is damage: _UNREADABLE), then apply them. A
    checkpoint that reads but does not fit this run (other weights, EMA keys or optimizer groups) is refused with
    CheckpointMismatchError, never taken for damage: passing over it would advise moving good state away."""
    meta = json.loads((folder / "state.json").read_text())
    if meta.pop("format", 1) != CHECKPOINT_FORMAT:
        raise CheckpointFormatError(
            f"{folder} was written by another diffdis version (checkpoint format {meta.get('format', 1)}, this "
            f"version reads {CHECKPOINT_FORMAT}); train into a new run folder, or resume with the version that wrote it"
        )
    weights, ema_state = load_file(folder / "model.safetensors"), load_file(folder / "ema.safetensors")
    optimizer_state = torch.load(folder / "optimizer.pt", weights_only=True)
    schedule_state = torch.load(folder / "lr_scheduler.pt", weights_only=True)
    state = TrainState(**meta)  # everything decoded: from here on a failure is a mismatch, not damage
    _check_fits(folder, weights, objective.state_dict())
    for part, apply in (
        ("weights", lambda: load_full_state_dict(objective, weights)),
        ("EMA", lambda: ema.load_state_dict(ema_state)),
        ("optimizer state", lambda: load_full_optimizer_state(optimizer, optimizer_state)),
        ("learning-rate schedule", lambda: lr_schedule.load_state_dict(schedule_state)),
    ):
        try:
            apply()
        except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as error:
            raise CheckpointMismatchError(
                f"{folder} reads, but its {part} does not fit this run ({error}). The checkpoint is intact and was "
                f"left as it is; it was written by {_writer(state)}. Resume with that code and the run's config.json, "
                "or train into a new folder"
            ) from None
    return state


def _writer(state: TrainState) -> str:
    """Which code and command wrote a checkpoint, from its segments' record."""
    last = state.segments[-1] if state.segments else {}
    return f"code {last.get('code', 'unknown')} ({last.get('command', 'command unknown')})"


def _check_fits(folder: Path, saved: dict[str, torch.Tensor], model: dict[str, torch.Tensor]) -> None:
    """Refuse, naming what differs, a checkpoint whose tensors do not fit this model."""
    problems = []
    missing, extra = sorted(model.keys() - saved.keys()), sorted(saved.keys() - model.keys())
    if missing:
        problems.append(f"missing {missing[:3]}")
    if extra:
        problems.append(f"unexpected {extra[:3]}")
    for key in sorted(saved.keys() & model.keys()):
        if saved[key].shape != model[key].shape:
            problems.append(f"{key}: {tuple(saved[key].shape)} there, {tuple(model[key].shape)} here")
    if problems:
        details = "; ".join(problems[:4])
        raise CheckpointMismatchError(
            f"{folder} holds weights of another model ({details}). The checkpoint is intact: resume with the "
            "configuration it was trained with (the run's config.json), or train into a new folder"
        )


def resume(run_dir: Path, objective, optimizer, lr_schedule, ema) -> tuple[TrainState, Path | None]:
    """The state of the newest readable checkpoint (a fresh state when there is none). A damaged one is
    reported and passed over; the loads overwrite everything, so a half-read damaged one leaves no trace."""
    found = checkpoints(run_dir)
    for folder in reversed(found):
        try:
            return load_checkpoint(folder, objective, optimizer, lr_schedule, ema), folder
        except (CheckpointFormatError, CheckpointMismatchError):
            raise
        except (*_UNREADABLE, json.JSONDecodeError) as error:  # decoding failed: damage (mismatches raise above)
            warnings.warn(
                f"checkpoint {folder} is damaged or incomplete ({error!r}); trying the one before it", stacklevel=2
            )
    if found:
        raise CheckpointError(
            f"none of the {len(found)} checkpoints in {run_dir / 'checkpoints'} can be read; move them away to start "
            "the run afresh"
        )
    return TrainState(), None
