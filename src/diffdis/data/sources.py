"""What the training loop reads: the batches of `train.data` (built-in sets in memory, or file sources streamed
through data/stream.py) and the labelled set for in-training validation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..specs import parse_spec
from .batches import BatchPosition, ShuffledBatches
from .builtin import builtin, check_builtin
from .datasets import CaptionedImages, LabelledImages
from .eval_sets import load_eval_set
from .files import file_source
from .stream import FileBatches

# Per optimizer step: the micro-batches, each {"images": (B, C, R, R) uint8, "captions": [...]}, or with
# encodings precomputed by `diffdis encode`: {"latent": VAE moments, "c", "e", "captions"}.
Step = list[dict]


def training_data(config: Config) -> tuple[CaptionedImages, LabelledImages]:
    """Built-in sources: the training set (all sources concatenated) and the validation set of the first
    source (held out from training; the test splits are never loaded here)."""
    parts = [builtin(source.kind).load(config) for source in config.train.sources]
    if len(parts) == 1:
        return parts[0]
    return CaptionedImages.concatenate([p[0] for p in parts]), parts[0][1]


def validation_set(config: Config) -> LabelledImages:
    """The images held out of a built-in training split (the ones its in-training validation reads)."""
    return training_data(config)[1]


class MemoryBatches:
    """Built-in sets: each step draws one global batch (the same on every process), and process r takes the
    r-th contiguous share (the rows of the global random draws it also takes), split into micro-batches for
    gradient accumulation."""

    def __init__(self, data: CaptionedImages, config: Config, rank: int, world: int, state: dict | None = None):
        t = config.train
        t.micro_batch_size(world)  # refuses a global batch that does not split evenly
        position = BatchPosition(**state) if state else BatchPosition()
        self.data, self.rank, self.world, self.accumulation = data, rank, world, t.gradient_accumulation
        self.stream = ShuffledBatches(len(data), t.batch_size, t.seed, position)
        self.features: torch.Tensor | None = None  # (N, C, h, w): REPA's targets per image, when training aligns

    def __iter__(self) -> Iterator[Step]:
        for indices, rng in self.stream:
            captions = self.data.captions(indices, rng)
            share = len(indices) // self.world
            mine = list(range(self.rank * share, (self.rank + 1) * share))  # this process's rows
            micro = share // self.accumulation
            parts = [mine[i : i + micro] for i in range(0, share, micro)]
            yield [self._batch(indices[rows], [captions[j] for j in rows]) for rows in parts]

    def _batch(self, indices: np.ndarray, captions: list[str]) -> dict:
        batch = {"images": self.data.images[indices], "captions": captions}
        if self.features is not None:
            batch["features"] = self.features[indices]
        return batch

    @property
    def state(self) -> dict:
        return {"epoch": self.stream.position.epoch, "offset": self.stream.position.offset}

    def skipped(self) -> dict[str, int]:
        return {}  # built-in sets are decoded and checked once, when loaded


def check_data(config: Config) -> None:
    """Refuse missing data before any compute: the built-in files, every file source (its shards or list) and
    the validation set's folder must be there."""
    t = config.train
    if t.sources[0].named:
        check_builtin(config)
    for source in t.sources:
        if not source.named:
            file_source(source)
    for path in parse_spec(t.val_data).paths if t.val_data else []:
        if not Path(path).exists():
            raise FileNotFoundError(f"train.val_data={t.val_data!r}: {path} does not exist")


def training_batches(
    config: Config, rank: int, world: int, state: dict | None = None
) -> tuple[MemoryBatches | FileBatches, LabelledImages | None]:
    """The step stream of `train.data` from `state` (a checkpoint's data position), and the validation set:
    `train.val_data` if set, else the built-in source's held-out split, else none."""
    t = config.train
    val = None
    if t.val_data:
        val = load_eval_set(t.val_data, config.model.resolution, config.model.image_channels, t.data_dir).data
    if t.sources[0].named:
        data, held_out = training_data(config)
        return MemoryBatches(data, config, rank, world, state), val or held_out
    return FileBatches(config, rank, world, state), val
