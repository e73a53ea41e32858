"""How a run's processes share the work, behind one small interface, so that the loop reads the same for one
process, DDP replicas (accelerate) and FSDP2 shards (sharding.py):

    parallel = parallel_for(accelerator, config)
    parallel.distribute(objective, units)            # before the optimizer and EMA, which then hold what it made
    objective, optimizer = parallel.wrap(objective, optimizer)
    norm = parallel.clip(objective, max_norm)        # averages what no wrapper synchronised, clips, returns the norm
    if main or parallel.collective: with parallel.for_inference(objective): ...   # validation, checkpoints
    exported = parallel.exportable(objective, pipe)  # export: the pipeline to save (on the main process)
    parallel.checksum(objective)                     # of what every process must hold alike
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

import torch
from accelerate import Accelerator
from diffusers import UNet2DConditionModel
from torch.distributed.tensor import DTensor

from ..config import Config
from ..models.diffdis import DiffDisModel
from ..pipeline import DiffDisPipeline
from .sharding import average_replicated_gradients, clip_gradients, full_state_dict, gathered, shard


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

    def exportable(self, objective: torch.nn.Module, pipe: DiffDisPipeline) -> DiffDisPipeline | None:
        """The pipeline the main process saves, with the weights the objective holds now: the run's own."""
        return pipe if self.accelerator.is_main_process else None

    @torch.no_grad()
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

    def exportable(self, objective: torch.nn.Module, pipe: DiffDisPipeline) -> DiffDisPipeline | None:
        """Through the state-dict API: the objective's whole state is gathered tensor by tensor (every process
        takes part), and the main process alone loads it into a whole copy of the model, which it saves."""
        state = full_state_dict(objective, keep=self.accelerator.is_main_process)
        if not self.accelerator.is_main_process:
            return None
        model = pipe.model
        whole = DiffDisModel(UNet2DConditionModel.from_config(model.unet.config), pipe.config.model, model.null_context)
        whole.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
        exported = DiffDisPipeline(whole, pipe.text_encoder, pipe.autoencoder, pipe.scheduler, pipe.config)
        exported.vocabulary = pipe.vocabulary
        return exported


def parallel_for(accelerator: Accelerator, config: Config) -> Replicas:
    return Shards(accelerator) if config.train.sharding == "fsdp" else Replicas(accelerator)
