"""Sharded data parallelism (train.sharding=fsdp): torch's FSDP2 (`fully_shard`) over the processes accelerate
launched, so that each process keeps 1/N of the trained weights, their gradients, AdamW moments and EMA copy. The
loop reaches it only through parallel.py's `Shards`.

The units gathered one at a time are the model's `sharding_units()`: the UNet's resnets, downsamplers and up
blocks, the text stream's blocks and the unique transformer, each used only inside its own forward call. The
rest (the down path's attention blocks, which the text stream calls into, and the UNet's stem and head) is
sharded with the objective and gathered whole for each step. Gradients are reduce-scattered unit by unit in the
backward pass. Scalar parameters (the logit scale), which fully_shard cannot shard, stay replicated and their
gradients are averaged here.

Checkpoints hold whole tensors in the layout of unsharded runs, so a run may resume with or without sharding and
on another number of processes. They are gathered tensor by tensor: every process takes part in each gather,
only the writing process keeps the result (on the CPU), so the others never hold more than one whole tensor.
Validation runs on every process (the units gather inside their forward calls, so all processes make the same
calls; the main one keeps the record) within `gathered()`; export gathers the state as checkpoints do and the main
process loads it into a whole copy of the model (parallel.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch.distributed.tensor import DTensor, distribute_tensor

FSDP2_TORCH = (2, 7)  # fully_shard is public from 2.6; its ignored_params (the replicated scalars) from 2.7


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int(minor)


def shard(module: torch.nn.Module, units: Iterable[torch.nn.Module] = ()) -> torch.nn.Module:
    """Shard `module`'s parameters over every process (in place), each of `units` gathered on its own and the rest
    with `module`; scalars stay replicated. FSDP2 is imported here, so that older torch versions train without it."""
    if _torch_version() < FSDP2_TORCH:
        raise RuntimeError(
            f"train.sharding=fsdp needs torch >= {'.'.join(map(str, FSDP2_TORCH))} (FSDP2's fully_shard with "
            f"ignored_params); this is torch {torch.__version__}. Upgrade torch, or train with train.sharding=none "
            "(DDP replicas)"
        )
    from torch.distributed.fsdp import fully_shard

    scalars = {p for p in module.parameters() if p.dim() == 0}
    for unit in units:
        fully_shard(unit, ignored_params=scalars)
    fully_shard(module, ignored_params=scalars)
    return module


def is_sharded(module: torch.nn.Module) -> bool:
    if _torch_version() < FSDP2_TORCH:
        return False  # nothing can have been sharded
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a shard (a collective call: every process makes it); other tensors as they are."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def shard_like(reference: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """`full` split the way `reference` is (every process passes the same values); `full` if it is not sharded."""
    if not isinstance(reference, DTensor):
        return full
    return distribute_tensor(full.to(reference.device, reference.dtype), reference.device_mesh, reference.placements)


def whole_tensors(tensors: dict[str, torch.Tensor], keep: bool = True) -> dict[str, torch.Tensor]:
    """`tensors` whole and on the CPU (collective for sharded ones). With `keep` False (every process but the one
    that writes) each gathered tensor is dropped at once and nothing is returned, so such a process holds one whole
    tensor at a time, never the whole state."""
    out = {}
    for key, value in tensors.items():
        whole = full_tensor(value.detach())
        if keep:
            out[key] = whole.cpu().contiguous()
    return out


def full_state_dict(module: torch.nn.Module, keep: bool = True) -> dict[str, torch.Tensor]:
    """`module.state_dict()` as whole tensors on the CPU (whole_tensors)."""
    return whole_tensors(module.state_dict(), keep)


def load_full_state_dict(module: torch.nn.Module, full: dict[str, torch.Tensor]) -> None:
    current = module.state_dict()
    module.load_state_dict({k: shard_like(current[k], v) if k in current else v for k, v in full.items()})


def _parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The parameters in the order of the optimizer's state-dict ids."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def full_optimizer_state(optimizer: torch.optim.Optimizer, keep: bool = True) -> dict:
    """`optimizer.state_dict()` with whole tensors (collective when the parameters are sharded); `keep` as in
    full_state_dict (False: each gathered tensor dropped at once, an empty dict returned)."""
    state = optimizer.state_dict()
    whole = {}
    for i, per_param in state["state"].items():
        values = {k: full_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in per_param.items()}
        if keep:
            whole[i] = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in values.items()}
    return {**state, "state": whole} if keep else {}


def load_full_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a state of whole tensors: a parameter's per-element state (AdamW's moments, its shape) is sharded as
    the parameter is; its scalars ("step") are kept whole."""
    params = _parameters(optimizer)
    state["state"] = {
        i: {
            k: shard_like(params[i], v) if isinstance(v, torch.Tensor) and v.shape == params[i].shape else v
            for k, v in per_param.items()
        }
        for i, per_param in state["state"].items()
    }
    optimizer.load_state_dict(state)


@contextmanager
def gathered(module: torch.nn.Module) -> Iterator[None]:
    """Ready for forward calls that bypass `module`'s own forward (validation through the pipeline): the weights
    sharded with `module` itself gathered for the block; its units gather theirs in their own forward calls, so
    every process must make the same calls. Nothing for an unsharded module."""
    if not is_sharded(module):
        yield
        return
    module.unshard()
    try:
        yield
    finally:
        module.reshard()


def average_replicated_gradients(grads: Iterable[torch.Tensor], processes: int) -> None:
    """All-reduce and average the gradients that no parallel wrapper reduced: all of them in a DDP step whose
    backward ran without syncing, the replicated scalars' in a sharded one (the shards were reduce-scattered)."""
    for grad in grads:
        if processes > 1 and not isinstance(grad, DTensor):
            torch.distributed.all_reduce(grad)
            grad /= processes


def gradient_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all the gradients together (over every process's shards)."""
    shards = [g.to_local() for g in grads if isinstance(g, DTensor)]
    whole = [g for g in grads if not isinstance(g, DTensor)]
    if not shards:
        return torch.linalg.vector_norm(torch.stack([g.norm() for g in whole]))
    squares = torch.stack([s.float().pow(2).sum() for s in shards]).sum()
    torch.distributed.all_reduce(squares)
    return (squares + sum((g.float().pow(2).sum() for g in whole), torch.zeros(()))).sqrt()


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their joint norm is at most `max_norm`; returns the norm before scaling."""
    if not any(isinstance(p, DTensor) for p in params):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params if p.grad is not None]
    total = gradient_norm(grads)
    factor = float((max_norm / (total + 1e-6)).clamp(max=1.0))
    for grad in grads:
        grad.mul_(factor)
    return total
