"""What one optimizer step needs besides the gradients: AdamW parameter groups (two learning rates, weight
decay on matrices and convolution kernels only), the learning-rate schedule, and the EMA of the weights."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

from ..config import TrainConfig
from .sharding import shard_like, whole_tensors

NO_DECAY = ("null_latent", "logit_scale")  # learned conditions and the temperature, not weights to shrink


def parameter_groups(objective: nn.Module, config: TrainConfig) -> list[dict]:
    """AdamW groups: the image branch at `lr_unet`, the new modules at `lr_new`; in each, weight decay only on
    matrices and convolution kernels (not on norms, biases, the logit scale or the null latent), as CLIP and
    nanoGPT do."""
    new_ids = {id(p) for p in objective.new_parameters()}
    groups = []
    for name, lr in (("unet", config.lr_unet), ("new", config.lr_new)):
        named = [
            (n, p) for n, p in objective.named_parameters() if p.requires_grad and (id(p) in new_ids) == (name == "new")
        ]
        decays = {n: p.ndim >= 2 and not n.endswith(NO_DECAY) for n, p in named}
        for decay in (True, False):
            params = [p for n, p in named if decays[n] == decay]
            wd = config.weight_decay if decay else 0.0
            groups.append({"name": name, "decay": decay, "params": params, "lr": lr, "weight_decay": wd})
    return [g for g in groups if g["params"]]


def apply_recipe(optimizer: torch.optim.Optimizer, lr_schedule, config: TrainConfig) -> None:
    """A resumed optimizer and schedule carry the learning rates and weight decay they were saved with; set this
    run's instead (a changed train.lr_* or train.weight_decay applies from the resumed step on)."""
    base = {"unet": config.lr_unet, "new": config.lr_new}
    lr_schedule.base_lrs = [base[g["name"]] for g in optimizer.param_groups]
    for group, lr, factor in zip(optimizer.param_groups, lr_schedule.base_lrs, lr_schedule.lr_lambdas):
        group.update(initial_lr=lr, lr=lr * factor(lr_schedule.last_epoch))
        group["weight_decay"] = config.weight_decay if group["decay"] else 0.0


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 10% of the base rate, reached at step `total`."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return f


class EMA:
    """Exponential moving average of the trainable weights, with the usual warm-up of the decay. decay = 0
    turns it off (no fp32 copy of the weights is kept: the memory lever for small GPUs)."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        trainable = {n: p for n, p in module.named_parameters() if p.requires_grad}
        self.params = trainable if decay > 0 else {}
        self.shadow = {n: p.detach().float().clone() for n, p in self.params.items()}
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in self.params.items():
            self.shadow[name].lerp_(p.detach().float(), 1 - decay)

    @contextmanager
    def applied(self):
        """Temporarily load the averaged weights (for validation and export)."""
        backup = {n: p.detach().clone() for n, p in self.params.items()}
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in self.params.items():
                    p.copy_(backup[n])

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for n, p in self.params.items():
            p.copy_(self.shadow[n].to(p.dtype))

    def state_dict(self, keep: bool = True) -> dict[str, torch.Tensor]:
        """Whole tensors on the CPU (gathered when the weights are sharded: a collective call). With `keep` False
        each gathered tensor is dropped at once and nothing is returned (every process but the writing one)."""
        out = whole_tensors(self.shadow, keep)
        return {**out, "__updates__": torch.tensor(self.updates)} if keep else {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.updates = int(state.pop("__updates__"))
        for name, shadow in self.shadow.items():
            shadow.copy_(shard_like(shadow, state[name]))
