"""Batches streamed from file sources: weighted mixing, a shuffle buffer, decoding in loader workers, split by
process and worker, with a position that a resumed run continues from exactly.

The sample stream of one *slot* (one loader worker of one process; slot = rank * workers + worker) is a pure
function of (seed, slot, number of slots): every random choice (shard order per epoch, which source each pull
comes from, which buffered sample leaves the buffer) is drawn from seeded generators in fixed blocks. So the
position of a slot is one number, the samples it has emitted, and resuming replays the pulls up to there
reading tar headers only, then reads the bytes of just the samples still waiting in the shuffle buffer.

Samples that cannot be used are skipped and counted by reason (undecodable image, missing caption, ...);
the counts travel with every batch and with the checkpoint.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..config import Config
from .captions import NamesAny
from .files import Pending, SampleError, decode_sample, file_source

BLOCK = 1024  # random draws are made in blocks of this size, identically when training and when replaying


class SlotStream(IterableDataset):
    """Batches (see `collate`) for the slots of one process, one slot per loader worker."""

    def __init__(self, config: Config, batch_size: int, rank: int, world: int, slots: list[dict], first_slot: int):
        t, m = config.train, config.model
        specs = t.sources
        self.sources = [file_source(s) for s in specs]
        weights = np.array([s.weight for s in specs])
        self.weights = weights / weights.sum()
        self.workers = max(1, t.num_workers)
        for source in self.sources:
            source.check_slots(world * self.workers)
        self.batch_size, self.seed, self.buffer = batch_size, t.seed, t.shuffle_buffer
        self.resolution, self.channels = m.resolution, m.image_channels
        self.rank, self.world = rank, world
        self.held_out = NamesAny(t.holdout_classes)
        self.slots = slots  # per local slot: {"emitted": int, "skipped": {reason: count}}
        self.first_slot = first_slot  # which local slot the first batch comes from (round-robin order)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        return self.slot_batches((worker + self.first_slot) % self.workers)

    def slot_batches(self, local: int) -> Iterator[dict]:
        slot, slots = self.rank * self.workers + local, self.world * self.workers
        emitted = self.slots[local]["emitted"]
        skipped = Counter(self.slots[local]["skipped"])
        replaying = [True]

        def count_error(reason: str) -> None:
            if not replaying[0]:  # errors met while replaying are already in the restored counts
                skipped[reason] += 1

        pulls = self._pulls(slot, slots, count_error)
        choices = _blocks(np.random.default_rng([self.seed, slot, 1]), self.buffer)
        waiting, pulled = self._restore(pulls, choices, emitted)
        replaying[0] = False
        batch, failures = [], 0
        limit = max(1000, 50 * self.batch_size)  # this many unusable samples in a row: the data is not usable
        while True:
            if len(waiting) < self.buffer:  # filling (only at the very start)
                waiting.append(_read(next(pulls)))
                pulled += 1
                continue
            j = next(choices)
            sample, waiting[j] = waiting[j], _read(next(pulls))
            pulled += 1
            emitted += 1
            try:
                if isinstance(sample, SampleError):
                    raise sample
                decoded = decode_sample(sample, self.resolution, self.channels)
                if self.held_out(decoded["caption"]):
                    raise SampleError("held-out class")
                batch.append(decoded)
            except SampleError as error:
                skipped[error.reason] += 1
                failures += 1
                if failures >= limit:
                    raise ValueError(
                        f"{limit} samples in a row could not be used (so far: {dict(skipped)}); check train.data"
                    ) from None
                continue
            failures = 0
            if len(batch) == self.batch_size:
                yield {**collate(batch), "slot": local, "emitted": emitted, "skipped": dict(skipped)}
                batch = []

    def _restore(self, pulls: Iterator[Pending], choices: Iterator[int], emitted: int) -> tuple[list, int]:
        """The shuffle buffer as it was after `emitted` emissions: replay the pulls, reading only the samples
        that are still waiting in the buffer at that point."""
        if emitted == 0:
            return [], 0
        owner = np.arange(self.buffer)  # pull index held by each buffer entry
        for k in range(emitted):
            owner[next(choices)] = self.buffer + k
        wanted = set(owner.tolist())
        pulled = self.buffer + emitted
        held = {}
        for p in range(pulled):
            pending = next(pulls)
            if p in wanted:
                held[p] = _read(pending)
        return [held[p] for p in owner.tolist()], pulled

    def _pulls(self, slot: int, slots: int, errors) -> Iterator[Pending]:
        streams = [self._epochs(i, slot, slots, errors) for i in range(len(self.sources))]
        if len(streams) == 1:
            yield from streams[0]
        rng = np.random.default_rng([self.seed, slot, 2])
        while True:
            for source in rng.choice(len(streams), size=BLOCK, p=self.weights):
                yield next(streams[source])

    def _epochs(self, index: int, slot: int, slots: int, errors) -> Iterator[Pending]:
        source = self.sources[index]
        for epoch in itertools.count():
            count = 0
            for pending in source.epoch(epoch, slot, slots, self.seed + 7919 * index, errors):
                count += 1
                yield pending
            if count == 0:
                raise ValueError(f"{source.name}: slot {slot} of {slots} found no readable samples in a whole epoch")


def collate(samples: list[dict]) -> dict:
    """Decoded samples -> {"captions": [...], "images" (B, C, R, R) uint8 | "latent" (B, 2C, h, w), "c", "e"}."""
    keys = set(samples[0])
    if any(set(s) != keys for s in samples):
        raise ValueError(
            "a batch mixes samples with and without precomputed encodings: encode every source with "
            "`diffdis encode` (the same model), or train on the raw shards"
        )
    batch = {"captions": [s["caption"] for s in samples]}
    for key in keys - {"caption"}:
        batch["images" if key == "image" else key] = torch.from_numpy(np.stack([s[key] for s in samples]))
    return batch


def _read(pending: Pending) -> dict[str, bytes] | SampleError:
    try:
        return pending.read()
    except SampleError as error:
        return error


def _blocks(rng: np.random.Generator, high: int) -> Iterator[int]:
    while True:
        yield from rng.integers(high, size=BLOCK).tolist()


class FileBatches:
    """The training loop's view of file sources: per optimizer step, `accumulation` micro-batches of this
    process's share, and a state (per-slot positions and skip counts) to checkpoint."""

    def __init__(self, config: Config, rank: int, world: int, state: dict | None = None):
        t = config.train
        self.accumulation = t.gradient_accumulation
        micro = t.micro_batch_size(world)
        workers = max(1, t.num_workers)
        fresh = {"consumed": 0, "slots": [{"emitted": 0, "skipped": {}} for _ in range(workers)]}
        if state is not None and len(state["slots"]) != workers:
            warnings.warn(
                f"the checkpoint's data position is for {len(state['slots'])} loader workers, this run has "
                f"{workers}: the data stream restarts from its beginning",
                stacklevel=2,
            )
            state = None
        self.state = state or fresh
        stream = SlotStream(config, micro, rank, world, self.state["slots"], self.state["consumed"] % workers)
        self.loader = (
            DataLoader(stream, batch_size=None, num_workers=t.num_workers, prefetch_factor=4, persistent_workers=True)
            if t.num_workers > 0
            else stream.slot_batches(stream.first_slot)
        )

    def __iter__(self) -> Iterator[list[dict]]:
        batches = iter(self.loader)
        while True:
            step = []
            for _ in range(self.accumulation):
                batch = next(batches)
                self.state["slots"][batch.pop("slot")] = {
                    "emitted": batch.pop("emitted"),
                    "skipped": batch.pop("skipped"),
                }
                self.state["consumed"] += 1
                step.append(batch)
            yield step

    def skipped(self) -> dict[str, int]:
        total = Counter()
        for slot in self.state["slots"]:
            total.update(slot["skipped"])
        return dict(total)
