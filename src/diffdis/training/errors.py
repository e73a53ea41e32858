"""What stops a training run, importable without torch.distributed or the loop (the command line catches these
for every command, so it must not pay for, or depend on, the training stack to do so)."""

from __future__ import annotations


class TrainingStopped(RuntimeError):
    """Training cannot usefully go on (e.g. a run of non-finite steps); the message names the step and the
    checkpoint to resume from."""


class CheckpointError(RuntimeError):
    """No checkpoint of the run can be read."""
