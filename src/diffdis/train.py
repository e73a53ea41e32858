"""The training loop (accelerate): both tasks on every mini-batch, EMA, validation, checkpoints and resume.

Run folder:
    config.json                 the resolved Config of the run
    checkpoints/step_NNNNNNN/   see checkpoint.py (atomic, last train.keep_checkpoints kept, damaged ones skipped)
    logs/                       TensorBoard: L_IG, L_ITA, logit scale, learning rate, images/s, validation
    samples/step_NNNNNNN.png    a generated grid, one row per class (or per prompt)
    model/                      the final pipeline (EMA weights), loadable with DiffDisPipeline.from_pretrained
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from .checkpoint import checkpoints, resume, save_checkpoint
from .config import FROM_INIT, Config
from .data.datasets import LabelledImages
from .data.sources import check_data, training_batches
from .data.transforms import uint8_to_model
from .evaluation.figures import image_grid
from .evaluation.zero_shot import zero_shot
from .models.encoders import MINILM
from .objective import DiffDisObjective
from .pipeline import DiffDisPipeline


class TrainingStopped(RuntimeError):
    """Training cannot usefully go on (e.g. a run of non-finite steps); the message names the step and the
    checkpoint to resume from."""


class EMA:
    """Exponential moving average of the trainable weights, with the usual warm-up of the decay. decay = 0
    turns it off (no fp32 copy of the weights is kept: the memory lever for small GPUs)."""

    def __init__(self, module: torch.nn.Module, decay: float):
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

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**self.shadow, "__updates__": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.updates = int(state.pop("__updates__"))
        for name in self.shadow:
            self.shadow[name].copy_(state[name])


def lr_lambda(warmup: int, total: int):
    """Linear warm-up, then cosine decay to 10% of the base rate."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def step_generator(seed: int, step: int, micro: int, device: torch.device) -> torch.Generator:
    """The generator of one micro-batch's random draws: a function of (seed, step, micro-batch) alone, so a
    resumed run draws exactly what an uninterrupted one would, on any number of processes."""
    state = np.random.SeedSequence([seed, step, micro]).generate_state(2, dtype=np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0] >> np.uint64(1)))


def build_pipeline(config: Config, run_dir: Path) -> DiffDisPipeline:
    """A fresh model, or one initialised from Stable Diffusion weights (train.init_from)."""
    t = config.train
    if not t.init_from:
        return DiffDisPipeline.from_config(config)
    return DiffDisPipeline.from_stable_diffusion(t.init_from, config, t.trust_pickle, run_dir / "init")


def preflight(config: Config) -> None:
    """Refuse a run whose inputs are missing, before any compute: the data, and the model folders it names."""
    config.validate()
    check_data(config)
    m, t = config.model, config.train
    for key, value in (("train.init_from", t.init_from), ("model.text_encoder", m.text_encoder),
                       ("model.autoencoder", m.autoencoder)):  # fmt: skip
        if value not in ("", MINILM, "none", FROM_INIT) and not Path(value).exists():
            raise FileNotFoundError(f"{key}={value!r} does not exist")


def train(config: Config, run_dir: str | Path, progress: bool = True) -> Path:
    """Train (or resume) the run in `run_dir`; returns the folder of the saved pipeline."""
    preflight(config)
    run_dir = Path(run_dir)
    accelerator = Accelerator(
        mixed_precision=config.train.mixed_precision,
        log_with="tensorboard",
        project_dir=str(run_dir),
        cpu=not torch.cuda.is_available(),
    )
    world, rank = accelerator.num_processes, accelerator.process_index
    torch.manual_seed(config.train.seed)  # the same initial weights on every process
    with accelerator.main_process_first():  # a single-file SD checkpoint is converted once
        pipe = build_pipeline(config, run_dir)
    config = pipe.config  # with init_from: shapes, VAE and schedule read from the SD model
    t = config.train
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.to_json(run_dir / "config.json")

    pipe.to(accelerator.device)
    model = pipe.model.train()
    if t.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    objective = DiffDisObjective(model, pipe.scheduler, pipe.query, t, config.model.variant, rank, world)
    objective.to(accelerator.device)
    new_ids = {id(p) for p in objective.new_parameters()}
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in objective.parameters() if id(p) not in new_ids], "lr": t.lr_unet},
            {"params": objective.new_parameters(), "lr": t.lr_new},
        ],
        weight_decay=t.weight_decay,
    )
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(t.warmup_steps, t.max_steps))
    ema = EMA(objective, t.ema_decay)

    state, resumed_from = resume(run_dir, objective, optimizer, lr_schedule, ema)
    if resumed_from is not None:
        accelerator.print(f"resuming from {resumed_from} (step {state.step})")
    objective, optimizer = accelerator.prepare(objective, optimizer)
    hparams = {f"{section}.{k}": v if isinstance(v, (int, float, str, bool)) else str(v)
               for section, values in config.to_dict().items() if isinstance(values, dict)
               for k, v in values.items()}  # fmt: skip
    accelerator.init_trackers("logs", config=hparams)

    data_state = state.data[rank] if len(state.data) == world else None
    if state.step and data_state is None:
        accelerator.print(f"the checkpoint was written by {len(state.data)} processes: the data stream restarts")
    batches, val_set = training_batches(config, rank, world, data_state)
    steps = iter(batches)
    bar = tqdm(
        total=t.max_steps, initial=state.step, disable=not (progress and accelerator.is_main_process), desc="train"
    )
    window_start, window_images = time.perf_counter(), 0
    segment_start, seconds_before = time.perf_counter(), state.seconds
    bad_streak = 0

    while state.step < t.max_steps:
        out = None
        for micro, batch in enumerate(next(steps)):
            if not state.prompts and val_set is None:
                state.prompts = list(batch["captions"][:8])
            generator = step_generator(t.seed, state.step, micro, accelerator.device)
            z, c, e = encode_batch(pipe, batch, generator, accelerator.device)
            last_micro = micro == t.gradient_accumulation - 1
            with accelerator.no_sync(objective) if not last_micro else nullcontext(), accelerator.autocast():
                out = objective(z, c, e, generator)
                accelerator.backward(out["loss"] / t.gradient_accumulation)
            window_images += len(z) * world
        grad_norm = accelerator.clip_grad_norm_(objective.parameters(), t.grad_clip)  # the same on every process
        if torch.isfinite(grad_norm):
            optimizer.step()
            ema.update()
            bad_streak = 0
        else:  # a non-finite loss gives non-finite gradients: skip the update, count it
            state.skipped_steps += 1
            bad_streak += 1
            if bad_streak >= t.max_bad_steps:
                saved = checkpoints(run_dir)
                raise TrainingStopped(
                    f"{bad_streak} non-finite steps in a row, the last at step {state.step + 1} (the weights were not "
                    f"updated by them); last good checkpoint: {saved[-1] if saved else 'none'}. Lower the learning "
                    "rates or check the data, then run the same command to resume from that checkpoint"
                )
        optimizer.zero_grad(set_to_none=True)
        lr_schedule.step()
        state.step += 1
        bar.update(1)
        state.seconds = seconds_before + time.perf_counter() - segment_start

        if state.step % t.log_every == 0 or state.step == t.max_steps:
            elapsed = time.perf_counter() - window_start
            skipped = _sum_counts(gather_object([batches.skipped()]))
            scalars = {
                "loss/L_IG": out["l_ig"].item(),
                "loss/L_ITA": out["l_ita"].item(),
                "loss/total": out["loss"].item(),
                "logit_scale": accelerator.unwrap_model(objective).logit_scale.exp().item(),
                "lr/unet": lr_schedule.get_last_lr()[0],
                "lr/new": lr_schedule.get_last_lr()[1],
                "images_per_second": window_images / max(elapsed, 1e-9),
                "skipped_steps": state.skipped_steps,
                "skipped_samples": sum(skipped.values()),
            }
            accelerator.log(scalars, step=state.step)
            bar.set_postfix(
                L_IG=f"{scalars['loss/L_IG']:.3f}",
                L_ITA=f"{scalars['loss/L_ITA']:.3f}",
                img_s=f"{scalars['images_per_second']:.0f}",
            )
            if skipped:
                bar.write(f"step {state.step}: skipped samples so far: {skipped}")
            window_start, window_images = time.perf_counter(), 0

        out_of_time = t.max_minutes > 0 and state.seconds > 60 * t.max_minutes
        last = state.step == t.max_steps or out_of_time
        if t.validate_every and state.step % t.validate_every == 0 or last:
            validation_start = time.perf_counter()
            if accelerator.is_main_process:
                with ema.applied():
                    result = validate(pipe, val_set, state.prompts, config, run_dir, state.step)
                state.history.append(result)
                if "zero_shot_top1" in result:
                    accelerator.log({"val/zero_shot_top1": result["zero_shot_top1"]}, step=state.step)
                    bar.write(f"step {state.step}: validation zero-shot top-1 {result['zero_shot_top1']:.2f}%")
            model.train()
            window_start += time.perf_counter() - validation_start  # images/s counts training time only
        if state.step % t.checkpoint_every == 0 or last:
            state.data = gather_object([batches.state])
            save_checkpoint(accelerator, run_dir, objective, optimizer, lr_schedule, ema, state, t.keep_checkpoints)
        if out_of_time:
            accelerator.print(f"stopping at step {state.step}: train.max_minutes={t.max_minutes} reached")
            break

    bar.close()
    skipped = _sum_counts(gather_object([batches.skipped()]))
    checksums = gather_object([_checksum(objective)])  # DDP keeps the replicas equal; verify, do not assume
    model_dir = run_dir / "model"
    if accelerator.is_main_process:
        with ema.applied():
            pipe.save_pretrained(model_dir)
        summary = {
            "steps": state.step,
            "train_seconds": state.seconds,
            "skipped_steps": state.skipped_steps,
            "skipped_samples": skipped,
            "processes": world,
            "parameter_checksums": checksums,
            "validation": state.history,
        }
        (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if skipped:
            accelerator.print(f"skipped samples: {skipped}")
        if len(set(checksums)) > 1:
            raise RuntimeError(f"the processes' parameters differ at the end of training (checksums {checksums})")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # else processes that imported diffusers may abort at exit
    return model_dir


@torch.no_grad()
def _checksum(module: torch.nn.Module) -> str:
    """A fingerprint of the parameters' exact values (equal on all processes when they are in sync)."""
    import hashlib

    digest = hashlib.sha256()
    for p in module.parameters():
        digest.update(p.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def _sum_counts(per_process: list[dict[str, int]]) -> dict[str, int]:
    total = Counter()
    for counts in per_process:
        total.update(counts)
    return dict(total)


def encode_batch(pipe: DiffDisPipeline, batch: dict, generator: torch.Generator, device: torch.device):
    """A micro-batch -> (latents z (B, C, h, w) sampled from the VAE posterior, c (B, L, D), e (B, D)), through the
    frozen encoders, or from encodings precomputed by `diffdis encode` (checked against this model's shapes)."""
    if "latent" in batch:
        z = pipe.autoencoder.from_moments(batch["latent"].to(device), generator)
    else:
        z = pipe.autoencoder.encode(uint8_to_model(batch["images"]).to(device), sample=True, generator=generator)
    if "c" in batch:
        c, e = batch["c"].to(device).float(), batch["e"].to(device).float()
    else:
        c, e = pipe.text_encoder.encode_cached(batch["captions"])
    m = pipe.config.model
    side = m.resolution // pipe.autoencoder.downsample
    expected = [(pipe.autoencoder.latent_channels, side, side), (m.text_max_length, pipe.model.text_dim)]
    if [tuple(z.shape[1:]), tuple(c.shape[1:])] != expected:
        raise ValueError(
            f"precomputed encodings have latents {tuple(z.shape[1:])} and text {tuple(c.shape[1:])}, this model "
            f"needs {expected[0]} and {expected[1]}: run `diffdis encode` again with this model's autoencoder, "
            "text encoder and resolution"
        )
    return z, c.to(device), e.to(device)


@torch.no_grad()
def validate(
    pipe: DiffDisPipeline, val_set: LabelledImages | None, prompts: list[str], config: Config, run_dir: Path, step: int
) -> dict:
    """Zero-shot accuracy on the labelled validation set and a grid of generated samples: one row per class,
    or, without a labelled set, one row per prompt (the first training captions of the run)."""
    t = config.train
    pipe.model.eval()
    record = {"step": step}
    if pipe.can_discriminate and val_set is not None:
        subset = val_set.subset(torch.arange(min(t.val_images, len(val_set))))
        result = zero_shot(pipe, subset, num_inference_steps=t.val_steps, seed=0)
        record.update(zero_shot_top1=result.accuracy, val_images=len(subset), val_steps=t.val_steps)
    if pipe.can_generate:
        per_row = 8
        labels = [f"a photo of a {name}." for name in val_set.class_names] if val_set is not None else prompts
        images = pipe.generate([p for p in labels for _ in range(per_row)], num_inference_steps=25, seed=0)
        rows = [images[i * per_row : (i + 1) * per_row] for i in range(len(labels))]
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        image_grid(rows, [label[:40] for label in labels]).save(run_dir / "samples" / f"step_{step:07d}.png")
    return record
