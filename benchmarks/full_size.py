"""Benchmark 7: the `sd` and `base` presets at their real sizes on this machine, measured rather than estimated.

The `sd` cases start from a Stable Diffusion v1 folder of SD's exact shapes with random weights
(diffdis.models.sd_folders; no download), exactly as a user starts from SD v1.5: `diffdis train --preset sd
--init-from FOLDER`. Each case runs in a process of its own, so every peak resident set (VmHWM) is that case's, and
writes runs/bench/full_size/CASE.json with its provenance. Cases:

- train: a few optimizer steps from the command line, as a user trains, on 256-px JPEG shards written like
  img2dataset writes them; the figures come from the run's train_summary.json (bytes of weights, gradients,
  moments and EMA measured on the tensors, peak memory, step times), beside the 16 + 4 bytes per trained
  parameter the docs estimate;
- generate / classify: one prompt, or a batch of images, through the pipeline; time and peak memory;
- diffusers: generation before any training against diffusers' own StableDiffusionPipeline from the same
  folder (the same noise, sampler and guidance), largest pixel difference (the case fails above 1 level);
- loading: images/s of the training stream over those shards with 0, 2 and 4 decoding workers;
- flops: the floating-point operations of one joint training step per image (torch's flop counter), from which
  docs/training.md derives the GPU step time the loading is compared with.

    python -m benchmarks.full_size                 # every case not yet measured
    python -m benchmarks.full_size sd-train-256    # one case (in this process)
    python -m benchmarks.full_size --list
    python -m benchmarks.full_size --table         # the measured cases as docs/training.md's table

Takes about an hour on 2 CPU cores (the SD folder is built once, 4.3 GB, under $DIFFDIS_CACHE or ~/.cache/diffdis).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path("runs/bench/full_size")
CACHE = Path(os.environ.get("DIFFDIS_CACHE", Path.home() / ".cache" / "diffdis"))
SD_FOLDER = CACHE / "sd-v1-random"
SHARDS = CACHE / "jpeg-256-shards"
SHARD_COUNT, SHARD_SIZE = 4, 500
PROMPT = "a photo of a red bicycle leaning against a wall"

TRAIN_STEPS = 3
TWO_PROCESSES = ("base-train-64-ddp2", "base-train-64-fsdp2")  # launched as 2 CPU processes; figures of the main one
#                name: (mode, preset, resolution, batch, overrides)
CASES: dict[str, tuple[str, str, int, int, tuple[str, ...]]] = {
    "sd-train-256": ("train", "sd", 256, 2, ("train.ema_decay=0",)),  # 2: InfoNCE's smallest batch
    "sd-train-256-ema": ("train", "sd", 256, 2, ()),
    "sd-train-256-b4": ("train", "sd", 256, 4, ("train.ema_decay=0",)),  # the 24 GB recipe's micro-batch
    "sd-diffusers-256": ("diffusers", "sd", 256, 2, ()),
    "sd-generate-256": ("generate", "sd", 256, 1, ()),
    "sd-generate-512": ("generate", "sd", 512, 1, ()),
    "sd-classify-256": ("classify", "sd", 256, 8, ()),
    "base-train-64": ("train", "base", 64, 8, ("train.gradient_checkpointing=true",)),
    "base-train-64-b32": ("train", "base", 64, 32, ("train.gradient_checkpointing=true",)),
    "base-train-64-ddp2": ("train", "base", 64, 8, ("train.gradient_checkpointing=true",)),
    "base-train-64-fsdp2": ("train", "base", 64, 8, ("train.gradient_checkpointing=true", "train.sharding=fsdp")),
    "base-generate-64": ("generate", "base", 64, 16, ()),
    "base-classify-64": ("classify", "base", 64, 64, ()),
    "loading-256": ("loading", "sd", 256, 32, ()),
    "sd-flops-256": ("flops", "sd", 256, 2, ()),
}
GENERATION_STEPS = 10  # DDIM steps; the time per step is what scales to any step count
DIFFUSERS_STEPS, DIFFUSERS_GUIDANCE = 5, 7.5


def ensure_inputs() -> None:
    """The SD v1 folder (random weights, SD's shapes) and the JPEG shards, made once."""
    from diffdis.models.sd_folders import build_stable_diffusion

    if not (SD_FOLDER / "model_index.json").exists():
        started = time.perf_counter()
        building = SD_FOLDER.with_name(SD_FOLDER.name + ".tmp")
        build_stable_diffusion(building, "v1")
        building.replace(SD_FOLDER)
        print(f"built {SD_FOLDER} in {time.perf_counter() - started:.0f} s", flush=True)
    if not (SHARDS / f"{SHARD_COUNT - 1:05d}.tar").exists():
        write_jpeg_shards(SHARDS)


def write_jpeg_shards(
    out: Path, side: int = 256, count: int = SHARD_COUNT, size: int = SHARD_SIZE, seed: int = 0
) -> None:
    """img2dataset's members (KEY.jpg at quality 95, KEY.txt, KEY.json) of 256-px photo-like images: smooth colour
    fields with grain, which decode no faster than photographs (the grain keeps the JPEG entropy high)."""
    from PIL import Image

    from diffdis.data.pack import write_shards

    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, side)[None, :, None]

    def samples():
        for index in range(count * size):
            corners = rng.uniform(0, 255, (4, 3))
            top = corners[0] * (1 - grid) + corners[1] * grid
            bottom = corners[2] * (1 - grid) + corners[3] * grid
            field = top * (1 - grid.transpose(1, 0, 2)) + bottom * grid.transpose(1, 0, 2)
            pixels = np.clip(field + rng.normal(0, 12, (side, side, 3)), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
            caption = f"a photo of thing number {index}"
            meta = json.dumps({"caption": caption, "width": side, "height": side}).encode()
            yield {"jpg": buffer.getvalue(), "txt": caption.encode(), "json": meta}

    write_shards(samples(), out, shard_size=size)


def shard_spec(folder: Path = SHARDS) -> str:
    """The train.data spec of every shard written in `folder`."""
    return f"wds:{folder}/{{00000..{len(list(folder.glob('*.tar'))) - 1:05d}}}.tar"


def _config(preset_name: str, resolution: int, extra: tuple[str, ...] = ()):
    from diffdis import preset

    init = (f"train.init_from={SD_FOLDER}",) if preset_name == "sd" else ()
    return preset(preset_name, [*init, f"model.resolution={resolution}", *extra])


def _pipeline(preset_name: str, resolution: int):
    from diffdis import DiffDisPipeline

    config = _config(preset_name, resolution)
    if preset_name == "sd":
        return DiffDisPipeline.from_stable_diffusion(SD_FOLDER, config)
    import torch

    torch.manual_seed(0)
    return DiffDisPipeline.from_config(config)


def train_case(preset_name: str, resolution: int, batch: int, extra: tuple[str, ...], processes: int = 1) -> dict:
    """A few steps of `diffdis train` (in this process, or under `accelerate launch` on several CPU processes); the
    run's own memory and step-time record (the main process's, which holds what every process holds)."""
    from diffdis.cli import main

    with tempfile.TemporaryDirectory(dir=CACHE) as run:
        argv = ["train", "--preset", preset_name, "--out", run, "--data", shard_spec(), "--no-progress"]
        argv += ["--init-from", str(SD_FOLDER)] if preset_name == "sd" else []
        settings = [
            f"model.resolution={resolution}",
            f"train.batch_size={batch}",
            f"train.max_steps={TRAIN_STEPS}",
            f"train.warmup_steps={TRAIN_STEPS}",
            "train.validate_every=0",
            "train.final_validation=false",
            "train.num_workers=0",
            *extra,
        ]
        for item in settings:
            argv += ["--set", item]
        if processes == 1:
            if main(argv) != 0:
                raise RuntimeError(f"diffdis {' '.join(argv)} failed")
        else:
            launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1"]
            launch += ["--num_processes", str(processes), "--mixed_precision", "no", "--dynamo_backend", "no"]
            subprocess.run([*launch, "--module", "diffdis.cli", *argv], check=True)
        summary = json.loads((Path(run) / "train_summary.json").read_text())
        config = json.loads((Path(run) / "config.json").read_text())
    memory = summary["memory"]
    ema = config["train"]["ema_decay"] > 0
    sharded = config["train"]["sharding"] == "fsdp"
    estimate = memory["trained_parameters"] * (16 + (4 if ema else 0)) // (processes if sharded else 1)
    held = sum(memory[k] for k in ("parameter_bytes", "gradient_bytes", "optimizer_bytes", "ema_bytes"))
    launcher = f"accelerate launch --multi_gpu --num_processes {processes} " if processes > 1 else ""
    return {
        "command": launcher + "diffdis " + " ".join(argv),
        "processes": processes,
        "sharding": config["train"]["sharding"],
        "dtype": f"fp32 weights, {config['train']['mixed_precision']} autocast",
        "gradient_checkpointing": config["train"]["gradient_checkpointing"],
        "ema": ema,
        "steps": summary["steps"],
        **memory,
        "states_bytes_measured": held,
        "states_bytes_estimated": estimate,
    }


def generate_case(preset_name: str, resolution: int, batch: int) -> dict:
    pipe = _pipeline(preset_name, resolution)
    started = time.perf_counter()
    images = pipe.generate([PROMPT] * batch, num_inference_steps=GENERATION_STEPS, seed=0)
    seconds = time.perf_counter() - started
    assert images[0].size == (resolution, resolution)
    return {
        "dtype": "fp32",
        "steps": GENERATION_STEPS,
        "seconds": seconds,
        "seconds_per_image_step": seconds / (batch * GENERATION_STEPS),
        "images_per_second": batch / seconds,
    }


def classify_case(preset_name: str, resolution: int, batch: int) -> dict:
    import torch

    pipe = _pipeline(preset_name, resolution)
    images = torch.rand(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(0)) * 2 - 1
    names = ["bicycle", "cat", "teapot", "lighthouse", "violin"]
    started = time.perf_counter()
    predicted = pipe.classify(images, names)
    seconds = time.perf_counter() - started
    assert predicted.shape == (batch,)
    return {"dtype": "fp32", "classes": len(names), "seconds": seconds, "images_per_second": batch / seconds}


def diffusers_case(resolution: int, batch: int) -> dict:
    """Generation from the SD folder before any training, against diffusers' StableDiffusionPipeline."""
    from diffdis.models.sd_folders import diffusers_images, diffusers_pipeline

    prompts = [PROMPT, "a watercolour of a lighthouse at dusk"][:batch]
    pipe = _pipeline("sd", resolution)
    ours = np.stack(
        [np.asarray(im) for im in pipe.generate(prompts, DIFFUSERS_STEPS, DIFFUSERS_GUIDANCE, seed=0)]
    ).astype(np.int16)
    del pipe
    theirs = diffusers_images(
        diffusers_pipeline(SD_FOLDER), prompts, resolution, DIFFUSERS_STEPS, DIFFUSERS_GUIDANCE, seed=0
    )
    difference = int(np.abs(ours - theirs).max())
    if difference > 1:
        raise AssertionError(f"DiffDis's generation differs from diffusers' by up to {difference} pixel levels")
    return {
        "dtype": "fp32",
        "steps": DIFFUSERS_STEPS,
        "guidance": DIFFUSERS_GUIDANCE,
        "sampler": "DDIM, trailing spacing",
        "max_pixel_difference": difference,
        "pixels_differing": int((ours != theirs).sum()),
        "pixels": int(ours.size),
    }


def loading_case(resolution: int, batch: int, steps: int = 20) -> dict:
    """Images/s of the training stream over the JPEG shards (decode, resize, batch), per worker count."""
    from diffdis.config import apply_overrides
    from diffdis.data.stream import FileBatches

    from .training import stream_rate

    base = _config("sd", resolution, (f"train.data={shard_spec()}", f"train.batch_size={batch}"))
    configs = {workers: apply_overrides(base, [f"train.num_workers={workers}"]) for workers in (0, 2, 4)}
    rates = {str(workers): stream_rate(FileBatches(config, 0, 1), steps) for workers, config in configs.items()}
    return {"images_per_second_by_workers": rates, "cpu_cores": os.cpu_count()}


def flops_case(resolution: int, batch: int) -> dict:
    """Floating-point operations of one joint training step (both passes, forward and backward, the gradient
    checkpointing's recomputation included), counted by torch.utils.flop_counter, per training image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from diffdis.objective import DiffDisObjective

    pipe = _pipeline("sd", resolution)
    pipe.model.unet.enable_gradient_checkpointing()
    objective = DiffDisObjective.from_pipeline(pipe, _config("sd", resolution).train).train()
    images = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    batch_in = {"images": images, "captions": [f"{PROMPT}, number {i}" for i in range(batch)]}
    with FlopCounterMode(display=False) as counter:
        objective(batch_in, torch.Generator().manual_seed(0))["loss"].backward()
    return {"flops_per_step": counter.get_total_flops(), "flops_per_image": counter.get_total_flops() / batch}


def measure(name: str) -> dict:
    """One case, in this process; returns its record (also written to OUT/NAME.json)."""
    from diffdis.provenance import provenance
    from diffdis.training.memory import peak_resident_mb

    mode, preset_name, resolution, batch, extra = CASES[name]
    ensure_inputs()
    if mode == "train":
        figures = train_case(preset_name, resolution, batch, extra, 2 if name in TWO_PROCESSES else 1)
    elif mode == "generate":
        figures = generate_case(preset_name, resolution, batch)
    elif mode == "classify":
        figures = classify_case(preset_name, resolution, batch)
    elif mode == "diffusers":
        figures = diffusers_case(resolution, batch)
    elif mode == "flops":
        figures = flops_case(resolution, batch)
    else:
        figures = loading_case(resolution, batch)
    record = {
        "case": name,
        "preset": preset_name,
        "mode": mode,
        "resolution": resolution,
        "batch": batch,
        "model": f"{SD_FOLDER.name}: SD v1 shapes, random weights" if preset_name == "sd" else "base preset, random",
        **figures,
        # a launched run's peak is its main process's (this process only waited for it)
        "peak_rss_mb": figures["peak_resident_mb"] if name in TWO_PROCESSES else peak_resident_mb(),
        "provenance": provenance(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def run(names: list[str] | None = None) -> dict:
    """Every case not yet measured, each in a fresh process (so each peak is its own)."""
    ensure_inputs()
    results = {}
    for name in names or CASES:
        path = OUT / f"{name}.json"
        if not path.exists():
            print(f"[full size] {name}", flush=True)
            done = subprocess.run([sys.executable, "-m", "benchmarks.full_size", name])
            if done.returncode != 0:
                results[name] = {"error": f"exit code {done.returncode}"}
                continue
        results[name] = json.loads(path.read_text())
    return results


def table() -> str:
    """The measured cases as the markdown table docs/training.md quotes."""
    states_column = "trained states, measured / 16 (+4 EMA) B per parameter (divided by the processes when sharded)"
    rows = [f"| case | what | peak resident set | time | {states_column} |"]
    rows.append("| --- | --- | --- | --- | --- |")
    for name in CASES:
        path = OUT / f"{name}.json"
        if not path.exists() or CASES[name][0] in ("loading", "flops", "diffusers"):
            continue
        r = json.loads(path.read_text())
        what = f"{r['preset']} {r['mode']}, {r['resolution']} px, batch {r['batch']}"
        if r["mode"] == "train":
            what += f", {r['dtype']}, EMA {'on' if r['ema'] else 'off'}"
            if r.get("processes", 1) > 1:  # per process: the main one's peak and states
                what += f", {r['processes']} processes, {'FSDP' if r['sharding'] == 'fsdp' else 'DDP'} (per process)"
            time_text = f"{r['median_step_seconds']:.0f} s/step (first {r['first_step_seconds']:.0f} s)"
            states = f"{r['states_bytes_measured'] / 1e9:.2f} GB / {r['states_bytes_estimated'] / 1e9:.2f} GB"
        elif r["mode"] == "generate":
            what += f", {r['dtype']}"
            per_step = r["seconds"] / r["steps"]
            time_text = f"{r['seconds']:.0f} s for {r['steps']} DDIM steps with guidance ({per_step:.1f} s/step)"
            states = "-"
        else:
            what += f", {r['dtype']}"
            time_text = f"{r['seconds']:.0f} s ({r['seconds'] / r['batch']:.2f} s per image, {r['classes']} classes)"
            states = "-"
        peak = f"{r['peak_rss_mb'] / 1024:.1f} GiB"
        if r.get("steps_peak_resident_mb"):  # before the first checkpoint, which gathers a sharded run's state
            peak += f" ({r['steps_peak_resident_mb'] / 1024:.1f} GiB before the checkpoint)"
        rows.append(f"| {name} | {what} | {peak} | {time_text} | {states} |")
    return "\n".join(rows)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments == ["--list"]:
        print("\n".join(CASES))
    elif arguments == ["--table"]:
        print(table())
    elif len(arguments) == 1 and arguments[0] in CASES:
        print(json.dumps(measure(arguments[0]), indent=2))
    elif arguments:
        sys.exit(f"unknown case {arguments}; cases: {', '.join(CASES)} (or none: every case not yet measured)")
    else:
        failed = [name for name, record in run().items() if "error" in record]
        sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
