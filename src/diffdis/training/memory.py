"""What a training run holds: the bytes of its trained weights, their gradients, the optimizer's moments and the
EMA copy (measured on the tensors, once per run segment), and the process's peak memory. Recorded in
train_summary.json, so the memory a recipe needs is read from a run rather than estimated."""

from __future__ import annotations

import statistics

import torch
from torch.distributed.tensor import DTensor


def _bytes(tensors) -> int:
    """Bytes held on this process (a shard's own part only)."""
    local = (t.to_local() if isinstance(t, DTensor) else t for t in tensors if isinstance(t, torch.Tensor))
    return sum(t.numel() * t.element_size() for t in local)


def held_bytes(module: torch.nn.Module, optimizer: torch.optim.Optimizer, ema_shadow: dict) -> dict[str, int]:
    """Bytes of the trained parameters, their gradients (call between backward and zero_grad), the optimizer state
    and the EMA copy, on this process."""
    trained = [p for p in module.parameters() if p.requires_grad]
    return {
        "trained_parameters": sum(p.numel() for p in trained),
        "parameter_bytes": _bytes(trained),
        "gradient_bytes": _bytes(p.grad for p in trained),
        "optimizer_bytes": _bytes(v for state in optimizer.state.values() for v in state.values()),
        "ema_bytes": _bytes(ema_shadow.values()),
    }


def peak_resident_mb() -> float | None:
    """This process's peak resident set (VmHWM, Linux), in MB; None where /proc is not there."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def memory_record(
    held: dict[str, int] | None, step_seconds: list[float], device: torch.device, steps_peak_mb: float | None = None
) -> dict:
    """The summary's memory and step-time record of one run segment. `steps_peak_mb`: the peak resident set
    before the segment's first validation or checkpoint (building the model and the optimizer steps), beside the
    peak of the whole segment (which a checkpoint of a sharded run raises: it gathers whole tensors)."""
    record: dict = {**(held or {}), "peak_resident_mb": peak_resident_mb(), "steps_peak_resident_mb": steps_peak_mb}
    if device.type == "cuda":
        record["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        record["cuda_peak_reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
    if step_seconds:  # the first step pays for warm-up (allocations, kernel choice); the rest are the rate
        record["first_step_seconds"] = step_seconds[0]
        record["median_step_seconds"] = statistics.median(step_seconds[1:] or step_seconds)
        record["steps_timed"] = len(step_seconds)
    return record
