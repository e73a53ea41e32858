"""Training: the loop (loop.py), checkpoints and resume (checkpoint.py, run_config.py), the optimizer's groups,
schedule and EMA (optim.py), what a run logs and shows (progress.py), and in-training validation (validation.py)."""

from .loop import TrainingStopped, train

__all__ = ["TrainingStopped", "train"]
