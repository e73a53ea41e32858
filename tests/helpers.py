"""What several test modules share, imported by name (fixtures are in conftest.py): the small model shape, a
short training run's overrides, stand-in data files, a free port, and the command that launches training in
one or more processes."""

from __future__ import annotations

import gzip
import os
import socket
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SMALL = [
    "model.block_out_channels=16,32,32",
    "model.attention_head_dim=8",
    "model.transformer_width=32",
    "model.transformer_head_dim=16",
    "model.text_max_length=16",
]
# Subprocesses: offline, one thread each (several run at once)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run_overrides(idx_dir, *extra: str) -> list[str]:
    """A small, fast training run on the stand-in Fashion-MNIST folder."""
    return SMALL + [
        f"train.data_dir={idx_dir}",
        "train.val_size=32",
        "train.batch_size=16",
        "train.validate_every=0",
        "train.val_images=16",
        *extra,
    ]


def write_idx(path, array) -> None:
    """`array` as an IDX file (gzipped when the name ends in .gz), the Fashion-MNIST file format."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_png(path: Path, size: tuple[int, int] = (28, 28), mode: str = "L") -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8)).convert(mode).save(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_command(out, processes: int, overrides: list[str], max_steps: int) -> list[str]:
    """`diffdis train` under accelerate launch with `processes` CPU processes (DDP over gloo when more than one)."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--num_processes", str(processes), "--main_process_port", str(free_port())]
    if processes > 1:
        launch.append("--multi_gpu")  # with Accelerator(cpu=True): DDP over gloo
    args = ["--module", "diffdis.cli", "train", "--out", str(out), "--max-steps", str(max_steps), "--no-progress"]
    return launch + args + [arg for item in overrides for arg in ("--set", item)]


def reset_accelerate_state() -> None:
    """accelerate keeps one state per process (mixed precision included) and offers no public reset; a test that
    builds an Accelerator of another precision resets it here, the one place the tests touch it."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
