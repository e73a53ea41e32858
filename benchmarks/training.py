"""Benchmarks 2 and 4: a joint training step against a generation-only step (models of the same shapes, batch
and resolution), and the data loaders' throughput against what the training step consumes."""

from __future__ import annotations

import time

import torch

from diffdis.config import apply_overrides
from diffdis.data.pack import pack_samples, write_shards
from diffdis.data.sources import MemoryBatches, training_data
from diffdis.data.stream import FileBatches
from diffdis.data.transforms import uint8_to_model
from diffdis.objective import DiffDisObjective
from diffdis.pipeline import DiffDisPipeline

from .common import OUT, interleaved, print_table


def _step(config, variant: str, z, c, e):
    """One optimizer step of a model of this variant (the same shapes; random weights: only time is measured)."""
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(apply_overrides(config, [f"model.variant={variant}"]))
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train).train()
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-6)
    generator = torch.Generator()

    def run():
        generator.manual_seed(0)
        out = objective.loss(z, c, e, generator)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def step_ratio(pipe: DiffDisPipeline, batch_size: int = 64) -> dict:
    config = pipe.config
    data, _ = training_data(config)
    batch = next(iter(MemoryBatches(data, config, 0, 1)))[0]
    z = uint8_to_model(batch["images"][:batch_size])
    c, e = pipe.text_encoder(batch["captions"][:batch_size])
    seconds = interleaved(
        {variant: _step(config, variant, z, c, e) for variant in ("diffdis", "gen", "dis")}, repeats=7, warmup=2
    )
    ratio = seconds["diffdis"] / seconds["gen"]
    print_table(
        f"training step, batch {len(z)}, {config.model.resolution} px (forward, backward, AdamW)",
        ["step", "seconds", "images/s", "/ generation-only"],
        [[name, s, len(z) / s, s / seconds["gen"]] for name, s in seconds.items()],
    )
    return {
        "seconds": seconds,
        "joint_vs_gen_step_ratio": ratio,
        "batch_size": len(z),
        "images_per_second": {k: len(z) / s for k, s in seconds.items()},
    }


def stream_rate(batches, steps: int) -> float:
    """Images/s a training stream delivers over `steps` optimizer steps, after its first (start-up: workers, the
    first shuffle buffer, which is not throughput)."""
    batches = iter(batches)
    next(batches)
    start = time.perf_counter()
    images = sum(len(micro["captions"]) for _ in range(steps) for micro in next(batches))
    return images / (time.perf_counter() - start)


def loader_throughput(pipe: DiffDisPipeline, consumed_images_per_second: float, steps: int = 40) -> dict:
    """Images/s each loader delivers on its own (the training step not running), against the joint step's
    images/s; a ratio above 1 means the loader is not the bottleneck."""
    config = pipe.config
    shards = OUT / "shards"
    if not (shards / "00009.tar").exists():
        write_shards(pack_samples("fashion-mnist:train", 28, limit=10_000), shards, shard_size=1000)
    data_spec = f"train.data=wds:{shards}/{{00000..00009}}.tar"
    loaders = {"in-memory (built-in set)": lambda: MemoryBatches(training_data(config)[0], config, 0, 1)}
    for workers in (0, 2):
        file_config = apply_overrides(config, [data_spec, f"train.num_workers={workers}"])
        loaders[f"webdataset shards, {workers} workers"] = lambda fc=file_config: FileBatches(fc, 0, 1)
    result, rows = {}, []
    for name, make in loaders.items():
        rate = stream_rate(make(), steps)
        result[name] = {"images_per_second": rate, "vs_training_step": rate / consumed_images_per_second}
        rows.append([name, rate, rate / consumed_images_per_second])
    print_table(
        f"data loading vs the joint training step ({consumed_images_per_second:.0f} images/s)",
        ["loader", "images/s", "x consumption"],
        rows,
    )
    return result


def run(pipe: DiffDisPipeline) -> dict:
    steps = step_ratio(pipe)
    return {"step": steps, "loaders": loader_throughput(pipe, steps["images_per_second"]["diffdis"])}
