"""`make gpu-check`: the `sd` preset at full size on a CUDA GPU, in one command of under 10 minutes, one JSON.

On a CUDA machine it builds a Stable Diffusion v1 folder of SD's exact shapes with random weights (no network:
diffdis.models.sd_folders) and measures, with PyTorch's SDPA attention:

- training: the step `diffdis train` runs (bf16 autocast, gradient checkpointing, its AdamW parameter groups,
  clipping, schedule and EMA), a few steps of it on JPEG shards, with the run's own step time and memory record,
  at 256 and 512 px, at the micro-batches of the docs' recipes (4 without EMA: one 24 GB card; 32 with EMA: one
  80 GB card); an out-of-memory case is recorded as such, not fatal;
- generation images/s with DDIM at 25 and 50 steps, and zero-shot classification images/s, at 256 px, by the
  pipeline loaded with `dtype="bfloat16"` as a user loads it;
- bf16 against fp32: the cosine of the two text queries of the same images, and the largest pixel difference
  of the same generation;
- a 2-step resume: `diffdis train` for 2 steps, against 1 step and a resume for the second (largest weight
  difference; GPU kernels need not be deterministic, so the figure is recorded, not required to be 0).

Without CUDA it runs a reduced mode and says so in the JSON ("reduced": true): the same code on a tiny SD-shaped
folder at 32 and 64 px, fp32 and bf16 on the CPU, small batches, so the check itself is tested (tests/test_bench.py)
before the day a GPU is lent.

    python -m benchmarks.gpu_check [--out runs/bench/gpu_check.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .full_size import CACHE, PROMPT, SHARDS, ensure_inputs, shard_spec, write_jpeg_shards

NAMES = ["bicycle", "cat", "teapot", "lighthouse", "violin"]


def plan(cuda: bool) -> dict:
    """What is measured: full size on CUDA, a reduced copy of the same on the CPU."""
    if cuda:
        return {
            "shapes": "v1",
            "folder": CACHE / "sd-v1-random",
            "train": [(256, 4, False), (256, 32, True), (512, 4, False), (512, 32, True)],
            "train_steps": 5,
            "resolution": 256,
            "generation_steps": (25, 50),
            "generation_batch": 8,
            "classify_batch": 64,
            "overrides": [],
        }
    return {
        "shapes": "tiny",
        "folder": None,  # a temporary folder
        "train": [(32, 2, False), (32, 4, True), (64, 2, False)],
        "train_steps": 2,
        "resolution": 32,
        "generation_steps": (2, 4),
        "generation_batch": 2,
        "classify_batch": 4,
        "overrides": ["model.transformer_width=32", "model.transformer_head_dim=16"],  # a small unique transformer
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config(folder: Path, resolution: int, overrides: list[str]):
    from diffdis import preset

    return preset("sd", [f"train.init_from={folder}", f"model.resolution={resolution}", *overrides])


def _pipeline(folder: Path, resolution: int, overrides: list[str], device: torch.device):
    from diffdis import DiffDisPipeline

    return DiffDisPipeline.from_stable_diffusion(folder, _config(folder, resolution, overrides)).to(device)


def train_figures(folder: Path, shards: Path, resolution: int, batch: int, ema: bool, p: dict) -> dict:
    """Step time and memory of the step `diffdis train` runs (its parameter groups, clipping, schedule, EMA and
    accelerate; bf16 autocast and gradient checkpointing), for a few steps on the JPEG shards: the run's own
    record of its steps (training/memory.py). An out-of-memory run is recorded as such."""
    from diffdis.cli import main

    settings = [
        f"model.resolution={resolution}",
        f"train.batch_size={batch}",
        "train.mixed_precision=bf16",
        "train.gradient_checkpointing=true",
        f"train.ema_decay={0.9999 if ema else 0}",
        f"train.warmup_steps={p['train_steps']}",
        "train.validate_every=0",
        "train.final_validation=false",
        "train.num_workers=0",
        "train.keep_checkpoints=1",
        *p["overrides"],
    ]
    with tempfile.TemporaryDirectory(dir=CACHE) as run:
        argv = ["train", "--preset", "sd", "--init-from", str(folder), "--data", shard_spec(shards)]
        argv += ["--max-steps", str(p["train_steps"]), "--no-progress", *(a for s in settings for a in ("--set", s))]
        try:
            if main([*argv, "--out", run]) != 0:
                return {"failed": f"diffdis {' '.join(argv)} returned an error"}
        except torch.cuda.OutOfMemoryError as error:
            return {"out_of_memory": str(error).splitlines()[0]}
        memory = json.loads((Path(run) / "train_summary.json").read_text())["memory"]
    return {
        "command": "diffdis " + " ".join(argv),
        "images_per_second": batch / memory["median_step_seconds"],
        **memory,
    }


def inference_figures(pipe, p: dict, device: torch.device) -> dict:
    """Generation and zero-shot images/s of a pipeline as a user loads it (its own `dtype=`: bf16 here)."""
    out = {}
    pipe.generate([PROMPT], 2, seed=0)  # warm-up: kernels, allocator
    for steps in p["generation_steps"]:
        _sync(device)
        started = time.perf_counter()
        pipe.generate([PROMPT] * p["generation_batch"], steps, seed=0)
        _sync(device)
        out[f"generation_ddim{steps}_images_per_second"] = p["generation_batch"] / (time.perf_counter() - started)
    images = torch.rand(p["classify_batch"], 3, p["resolution"], p["resolution"], device=device) * 2 - 1
    pipe.classify(images[:2], NAMES)
    _sync(device)
    started = time.perf_counter()
    pipe.classify(images, NAMES)
    _sync(device)
    out["zero_shot_images_per_second"] = p["classify_batch"] / (time.perf_counter() - started)
    return out


def agreement(fp32_pipe, bf16_pipe, p: dict, device: torch.device) -> dict:
    """The pipeline loaded in bf16 against the same weights in fp32, on the same images and noise."""
    images = torch.rand(8, 3, p["resolution"], p["resolution"], generator=torch.Generator().manual_seed(1)) * 2 - 1
    images = images.to(device)
    steps = p["generation_steps"][0]
    fp32 = fp32_pipe.encode_image(images, seed=0)
    picture32 = np.asarray(fp32_pipe.generate([PROMPT], steps, seed=0)[0]).astype(np.int16)
    bf16 = bf16_pipe.encode_image(images, seed=0)
    picture16 = np.asarray(bf16_pipe.generate([PROMPT], steps, seed=0)[0]).astype(np.int16)
    cosine = torch.nn.functional.cosine_similarity(fp32.float(), bf16.float(), dim=1)
    return {
        "query_cosine_min": cosine.min().item(),
        "query_cosine_mean": cosine.mean().item(),
        "generation_max_pixel_difference": int(np.abs(picture32 - picture16).max()),
        "generation_mean_pixel_difference": float(np.abs(picture32 - picture16).mean()),
    }


def resume_figures(folder: Path, p: dict, shards: Path) -> dict:
    """`diffdis train` for 2 steps in one go, against 1 step and then a resume: largest weight difference."""
    from safetensors.torch import load_file

    from diffdis.cli import main

    settings = [f"model.resolution={p['resolution']}", "train.batch_size=2", "train.validate_every=0"]
    settings += ["train.final_validation=false", "train.warmup_steps=1", "train.num_workers=0", *p["overrides"]]
    settings += ["train.keep_checkpoints=1"]  # at full size a checkpoint with EMA is 16 GB
    with tempfile.TemporaryDirectory(dir=CACHE) as work:

        def train(run: str, steps: int) -> None:
            argv = ["train", "--preset", "sd", "--init-from", str(folder), "--data", shard_spec(shards)]
            argv += ["--out", f"{work}/{run}"]
            argv += ["--max-steps", str(steps), "--checkpoint-every", "1", "--no-progress"]
            for item in settings:
                argv += ["--set", item]
            if main(argv) != 0:
                raise RuntimeError(f"diffdis {' '.join(argv)} failed")

        train("straight", 2)
        shutil.rmtree(f"{work}/straight/checkpoints")  # only its exported weights are compared
        train("resumed", 1)
        train("resumed", 2)
        unet = "model/unet/diffusion_pytorch_model.safetensors"
        weights = [load_file(f"{work}/{run}/{unet}") for run in ("straight", "resumed")]
        difference = max((weights[0][k].float() - weights[1][k].float()).abs().max().item() for k in weights[0])
    return {"steps": 2, "resumed_after": 1, "max_unet_weight_difference": difference}


def run(out: Path) -> dict:
    from diffdis import DiffDisPipeline
    from diffdis.models.sd_folders import build_stable_diffusion
    from diffdis.provenance import provenance

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    p = plan(cuda)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if cuda:
            ensure_inputs()
            folder, shards = p["folder"], SHARDS
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=CACHE if CACHE.exists() else None)))
            folder = build_stable_diffusion(work / "sd-tiny", "tiny")
            shards = work / "shards"
            write_jpeg_shards(shards, side=64, count=1, size=8)
        record: dict = {
            "reduced": not cuda,
            "mode": "full size on CUDA" if cuda else "reduced: tiny SD shapes on the CPU (no CUDA here)",
            "shapes": p["shapes"],
            "attention": "PyTorch scaled_dot_product_attention (diffusers' default processor)",
            "train": {},
        }
        for resolution, batch, ema in p["train"]:
            name = f"{resolution}px_batch{batch}_{'ema' if ema else 'no_ema'}"
            record["train"][name] = train_figures(folder, shards, resolution, batch, ema, p)
            if cuda:
                torch.cuda.empty_cache()
        with tempfile.TemporaryDirectory(dir=CACHE if CACHE.exists() else None) as saved:
            _pipeline(folder, p["resolution"], p["overrides"], torch.device("cpu")).save_pretrained(saved)
            fp32, bf16 = (DiffDisPipeline.from_pretrained(saved, device, dtype) for dtype in ("float32", "bfloat16"))
        record["inference"] = inference_figures(bf16, p, device)
        record["bf16_vs_fp32"] = agreement(fp32, bf16, p, device)
        del fp32, bf16
        record["resume"] = resume_figures(folder, p, shards)
    record["seconds"] = time.perf_counter() - started
    record["provenance"] = provenance()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "provenance"}, indent=2))
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/gpu_check.json"))
    run(parser.parse_args().out)
