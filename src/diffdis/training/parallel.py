"""How a run's processes share the work, behind one small interface, so that the loop reads the same for one
process, DDP replicas (accelerate) and FSDP2 shards (sharding.py):

    parallel = parallel_for(accelerator, config)
    parallel.distribute(objective, units)            # before the optimizer and EMA, which then hold what it made
    objective, optimizer = parallel.wrap(objective, optimizer)
    norm = parallel.clip(objective, max_norm)        # averages what no wrapper synchronised, clips, returns the norm
    if main or parallel.collective: with parallel.for_inference(objective): ...   # validation, checkpoints
    with parallel.whole_weights(objective): ...      # export: whole parameters in place
    parallel.checksum(objective)                     # of what every process must hold alike
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

import torch
from accelerate import Accelerator
from torch.distributed.tensor import DTensor

from ..config import Config
from .sharding import average_replicated_gradients, clip_gradients, gathered, shard, whole_copies


class Replicas:
    """One process, or DDP replicas through accelerate: every process holds everything; the main one validates
    and exports."""

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator

    def distribute(self, objective: torch.nn.Module, units: Iterable[torch.nn.Module]) -> None:
        """Nothing to split: each process keeps a whole replica."""

    def wrap(self, objective: torch.nn.Module, optimizer: torch.optim.Optimizer):
        return self.accelerator.prepare(objective, optimizer)

    def clip(self, objective: torch.nn.Module, max_norm: float) -> torch.Tensor:
        """DDP averaged the gradients in backward: clip their joint norm (the same on every process)."""
        return self.accelerator.clip_grad_norm_(objective.parameters(), max_norm)

    collective = False  # whether every process takes part in validation, checkpoints and export (else the main one)

    def for_inference(self, objective: torch.nn.Module):
        return nullcontext()

    def whole_weights(self, objective: torch.nn.Module):
        return nullcontext()

    def checksum(self, objective: torch.nn.Module) -> str:
        """A fingerprint of the parameters every process holds alike (all of them for replicas)."""
        digest = hashlib.sha256()
        for p in objective.parameters():
            if not isinstance(p, DTensor):
                digest.update(p.detach().cpu().float().numpy().tobytes())
        return digest.hexdigest()[:16]


class Shards(Replicas):
    """train.sharding=fsdp: each process holds 1/N of the weights, gradients, moments and EMA (sharding.py); every
    process takes part in validation and export, since the units gather their weights in their own forward calls.
    The checksum covers the scalars kept whole (the shards differ by design)."""

    def distribute(self, objective: torch.nn.Module, units: Iterable[torch.nn.Module]) -> None:
        shard(objective, units)

    def wrap(self, objective: torch.nn.Module, optimizer: torch.optim.Optimizer):
        return objective, self.accelerator.prepare(optimizer)  # a sharded objective is not wrapped again

    def clip(self, objective: torch.nn.Module, max_norm: float) -> torch.Tensor:
        """The shards were reduce-scattered in backward; the replicated scalars are averaged here, then the joint
        norm over every process's shards is clipped."""
        params = [p for p in objective.parameters() if p.grad is not None]
        average_replicated_gradients([p.grad for p in params], self.accelerator.num_processes)
        return clip_gradients(params, max_norm)

    collective = True

    @contextmanager
    def for_inference(self, objective: torch.nn.Module) -> Iterator[None]:
        with gathered(objective):
            yield

    @contextmanager
    def whole_weights(self, objective: torch.nn.Module) -> Iterator[None]:
        with whole_copies(objective):
            yield


def parallel_for(accelerator: Accelerator, config: Config) -> Replicas:
    return Shards(accelerator) if config.train.sharding == "fsdp" else Replicas(accelerator)
