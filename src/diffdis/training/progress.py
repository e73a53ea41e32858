"""What a run reports while it trains: the logged losses (means over steps, micro-batches and processes) and the
progress shown to the user (a bar on a terminal, plain lines in a log file)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm


class LossMeter:
    """The logged losses: means over the steps since the last log, their micro-batches and all processes (the
    per-process values alone are each a part of the global batch); the gradient norms (already global), means
    over the steps that measured them; and the training images per second."""

    NAMES = ("loss/L_IG", "loss/L_ITA", "loss/total", "loss/L_align")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: torch.Tensor | None = None
        self.count, self.images, self.seconds = 0, 0, 0.0
        self.norms: dict[str, list[float]] = {}

    def add(self, out: dict[str, torch.Tensor], images: int) -> None:
        values = torch.stack([out["l_ig"], out["l_ita"], out["loss"].detach(), out["l_align"]]).float()
        self.sums = values if self.sums is None else self.sums + values
        self.count += 1
        self.images += images

    def add_norms(self, norms: dict[str, float]) -> None:
        for name, value in norms.items():
            self.norms.setdefault(name, []).append(value)

    def read(self, accelerator: Accelerator) -> dict[str, float]:
        """The means since the last read (a collective call: every process makes it), then a fresh window."""
        sums = accelerator.reduce(self.sums, "sum") / (self.count * accelerator.num_processes)
        out = dict(zip(self.NAMES, sums.tolist()))
        out["images_per_second"] = self.images / max(self.seconds, 1e-9)
        out.update({name: sum(values) / len(values) for name, values in self.norms.items()})
        self.reset()
        return out


class Progress:
    """A progress bar on a terminal; when the output goes to a file, one plain line per logging step instead of
    hundreds of kilobytes of carriage returns. Messages are printed by the main process only, and every message
    and logging line is also appended, timestamped, to the run's text log (`log_file`)."""

    def __init__(self, enabled: bool, main: bool, total: int, initial: int, log_file: Path | None = None):
        self.main = main
        self.lines = enabled and main and not sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc="train", disable=not (enabled and main) or self.lines)
        self.total = total
        self.log_file = log_file if main else None

    def _append(self, line: str) -> None:
        if self.log_file is not None:
            with open(self.log_file, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {line}\n")

    def step(self) -> None:
        self.bar.update(1)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        text = {
            "L_IG": f"{scalars['loss/L_IG']:.4f}",
            "L_ITA": f"{scalars['loss/L_ITA']:.4f}",
            "img/s": f"{scalars['images_per_second']:.0f}",
        }
        line = f"step {step}/{self.total}  " + "  ".join(f"{k} {v}" for k, v in text.items())
        self._append(line)
        if self.lines:
            print(line, flush=True)
        else:
            self.bar.set_postfix(text)

    def write(self, message: str) -> None:
        if self.main:
            self.bar.write(message)
            self._append(message)

    def close(self) -> None:
        self.bar.close()
