"""Training: the loop (loop.py), checkpoints and resume (checkpoint.py, run_config.py), the optimizer's groups,
schedule and EMA (optim.py), what a run logs and shows (progress.py), and in-training validation (validation.py).

`train` is imported on first use: the command line imports this package's errors (errors.py) for every command,
and generating or classifying must not need the training stack (FSDP2 needs a recent torch; sharding.py)."""

from .errors import CheckpointError, TrainingStopped

__all__ = ["CheckpointError", "TrainingStopped", "train"]


def __getattr__(name: str):
    if name == "train":
        from .loop import train

        return train
    raise AttributeError(f"module 'diffdis.training' has no attribute {name!r}")
