"""Benchmark 5: peak memory (resident set of a fresh process, /proc VmHWM) of training and inference per preset.

Run as `python -m benchmarks.memory PRESET MODE BATCH` it measures one case and prints JSON; `run()` launches
one such process per case, so that every figure is the peak of its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CASES = {  # preset -> batch sizes (the base preset's default batch is a GPU batch; a CPU step uses less)
    "tiny": {"train": 64, "classify": 256, "generate": 64},
    "base": {"train": 8, "classify": 64, "generate": 16},
}


def _status_mb(field: str) -> float:
    """VmHWM (peak resident set) or VmRSS (current) of this process, from /proc. (getrusage's ru_maxrss would
    include the parent's peak: Linux carries it across fork and exec.)"""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} is not in /proc/self/status")


def measure(preset_name: str, mode: str, batch: int) -> dict:
    import torch

    from diffdis import DiffDisPipeline, preset
    from diffdis.objective import DiffDisObjective

    config = preset(preset_name)
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(config)
    m = config.model
    images = torch.rand(batch, m.image_channels, m.resolution, m.resolution) * 2 - 1
    after_build = _status_mb("VmRSS")
    if mode == "train":
        objective = DiffDisObjective.from_pipeline(pipe, config.train).train()
        optimizer = torch.optim.AdamW(objective.parameters())
        c, e = pipe.text_encoder(["a photo of a thing."] * batch)
        for _ in range(2):
            objective.loss(images, c, e)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    elif mode == "classify":
        pipe.encode_image(images)
    else:
        pipe.generate(["a photo of a thing."] * batch, num_inference_steps=2)
    parameters = sum(p.numel() for p in pipe.model.parameters())
    return {
        "preset": preset_name,
        "mode": mode,
        "batch": batch,
        "peak_rss_mb": _status_mb("VmHWM"),
        "rss_after_build_mb": after_build,
        "parameters": parameters,
    }


def run() -> dict:
    results = {}
    for preset_name, modes in CASES.items():
        for mode, batch in modes.items():
            command = [sys.executable, "-m", "benchmarks.memory", preset_name, mode, str(batch)]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
            if done.returncode != 0:
                results.setdefault(preset_name, {})[mode] = {"error": done.stderr[-500:]}
                continue
            results.setdefault(preset_name, {})[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    from .common import print_table

    rows = [
        [p, mode, r.get("batch", "-"), r.get("rss_after_build_mb", float("nan")), r.get("peak_rss_mb", "error")]
        for p, modes in results.items()
        for mode, r in modes.items()
    ]
    print_table(
        "peak memory (CPU, fp32, resident set of a fresh process)",
        ["preset", "mode", "batch", "MB after building the model", "peak MB"],
        rows,
    )
    return results


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
