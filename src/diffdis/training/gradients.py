"""Per-loss gradients of the joint step: L_IG's and λ·L_ITA's gradients taken in two backward passes, so that each
loss's gradient norm can be logged and, with `train.clip_per_loss`, each clipped within its own budget before
they are added (one loss's large gradient then cannot shrink the other's step)."""

from __future__ import annotations

import torch

from .sharding import average_replicated_gradients, clip_gradients, gradient_norm


def set_aside_gradients(module: torch.nn.Module, kept: list[torch.Tensor] | None) -> list[torch.Tensor]:
    """Move the parameters' gradients into `kept` (added to what it holds) and clear them."""
    params = [p for p in module.parameters() if p.requires_grad]
    if kept is None:
        kept = [torch.zeros_like(p) for p in params]
    for store, p in zip(kept, params):
        if p.grad is not None:
            store += p.grad
            p.grad = None
    return kept


def combine_loss_gradients(
    module: torch.nn.Module, ita_grads: list[torch.Tensor], processes: int, grad_clip: float, per_loss: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """.grad holds L_IG's gradients and `ita_grads` λ·L_ITA's (each averaged over processes here). Clip each to
    `grad_clip` in its own budget (`per_loss`) or else their sum, and leave the sum in .grad. Returns the norms of
    L_IG's, of λ·L_ITA's and of the sum before any clipping of the sum."""
    params = [p for p in module.parameters() if p.requires_grad]
    ig_grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    # DDP's backward passes did not sync here; a sharded objective's shards are reduced, its scalars not
    average_replicated_gradients((*ig_grads, *ita_grads), processes)
    norms = [gradient_norm(grads) for grads in (ig_grads, ita_grads)]
    factors = [float((grad_clip / (n + 1e-6)).clamp(max=1.0)) if per_loss else 1.0 for n in norms]
    for p, ig, ita in zip(params, ig_grads, ita_grads):
        p.grad = ig * factors[0] + ita * factors[1]
    # Per-loss budgets are not clipped again as a sum: that would couple the two losses once more.
    total = clip_gradients(params, float("inf") if per_loss else grad_clip)
    return norms[0], norms[1], total
