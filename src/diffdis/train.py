"""The training loop (accelerate): both tasks on every mini-batch, EMA, validation, checkpoints and resume.

Run folder:
    config.json                 the resolved Config of the run
    checkpoints/step_XXXXXXX/   model.safetensors, ema.safetensors, optimizer.pt, lr_scheduler.pt, rng.pt,
                                state.json (written to a temporary folder, then renamed: a crash never leaves a
                                half-written checkpoint under the final name)
    logs/                       TensorBoard: L_IG, L_ITA, logit scale, learning rate, images/s, validation
    samples/step_XXXXXXX.png    a generated grid, one row per class
    model/                      the final pipeline (EMA weights), loadable with DiffDisPipeline.from_pretrained
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .config import Config
from .data.batches import BatchPosition, ShuffledBatches
from .data.datasets import LabelledImages
from .data.sources import training_data
from .data.transforms import uint8_to_model
from .evaluation.figures import image_grid
from .evaluation.zero_shot import zero_shot
from .objective import DiffDisObjective
from .pipeline import DiffDisPipeline


class EMA:
    """Exponential moving average of the trainable weights, with the usual warm-up of the decay."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.params = {n: p for n, p in module.named_parameters() if p.requires_grad}
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


@dataclass
class TrainState:
    step: int = 0
    seconds: float = 0.0  # training wall time so far, summed over resumed segments
    skipped_steps: int = 0
    position: BatchPosition = field(default_factory=BatchPosition)
    history: list[dict] = field(default_factory=list)  # validation results


def lr_lambda(warmup: int, total: int):
    """Linear warm-up, then cosine decay to 10% of the base rate."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def latest_checkpoint(run_dir: Path) -> Path | None:
    folder = run_dir / "checkpoints"
    done = (
        sorted(p for p in folder.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
        if folder.exists()
        else []
    )
    return done[-1] if done else None


def train(config: Config, run_dir: str | Path, progress: bool = True) -> Path:
    """Train (or resume) the run in `run_dir`; returns the folder of the saved pipeline."""
    config.validate()
    t = config.train
    run_dir = Path(run_dir)
    accelerator = Accelerator(
        mixed_precision=t.mixed_precision,
        log_with="tensorboard",
        project_dir=str(run_dir),
        cpu=not torch.cuda.is_available(),
    )
    torch.manual_seed(t.seed)  # the same initial weights on every process
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.to_json(run_dir / "config.json")

    train_set, val_set = training_data(config)
    pipe = DiffDisPipeline.from_config(config)
    pipe.to(accelerator.device)
    model = pipe.model.train()
    if t.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    objective = DiffDisObjective(model, pipe.scheduler, pipe.query, t, config.model.variant).to(accelerator.device)
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
    torch.manual_seed(t.seed + 1 + accelerator.process_index)  # independent noise draws per process

    state = TrainState()
    resume_from = latest_checkpoint(run_dir)
    if resume_from is not None:
        state = load_checkpoint(resume_from, objective, optimizer, lr_schedule, ema)
        accelerator.print(f"resuming from {resume_from} (step {state.step})")
    objective, optimizer = accelerator.prepare(objective, optimizer)
    hparams = {f"{section}.{k}": v if isinstance(v, (int, float, str, bool)) else str(v)
               for section, values in config.to_dict().items() if isinstance(values, dict)
               for k, v in values.items()}  # fmt: skip
    accelerator.init_trackers("logs", config=hparams)

    world, rank = accelerator.num_processes, accelerator.process_index
    stream = ShuffledBatches(len(train_set), t.batch_size * world, t.seed, state.position)
    batches = iter(stream)
    bar = tqdm(
        total=t.max_steps, initial=state.step, disable=not (progress and accelerator.is_main_process), desc="train"
    )
    window_start, window_images = time.perf_counter(), 0
    segment_start, seconds_before = time.perf_counter(), state.seconds

    while state.step < t.max_steps:
        indices, rng = next(batches)
        captions = train_set.captions(indices, rng)
        indices, captions = indices[rank::world], captions[rank::world]  # this process's share
        images = uint8_to_model(train_set.images[indices]).to(accelerator.device)
        c, e = pipe.text_encoder.encode_cached(captions)
        z = pipe.autoencoder.encode(images, sample=True)

        with accelerator.autocast():
            out = objective(z, c.to(z.device), e.to(z.device))
        accelerator.backward(out["loss"])
        grad_norm = accelerator.clip_grad_norm_(objective.parameters(), t.grad_clip)
        if torch.isfinite(out["loss"]) and torch.isfinite(grad_norm):
            optimizer.step()
            ema.update()
        else:
            state.skipped_steps += 1
        optimizer.zero_grad(set_to_none=True)
        lr_schedule.step()
        state.step += 1
        bar.update(1)
        window_images += len(indices) * world
        state.seconds = seconds_before + time.perf_counter() - segment_start

        if state.step % t.log_every == 0 or state.step == t.max_steps:
            elapsed = time.perf_counter() - window_start
            scalars = {
                "loss/L_IG": out["l_ig"].item(),
                "loss/L_ITA": out["l_ita"].item(),
                "loss/total": out["loss"].item(),
                "logit_scale": accelerator.unwrap_model(objective).logit_scale.exp().item(),
                "lr/unet": lr_schedule.get_last_lr()[0],
                "lr/new": lr_schedule.get_last_lr()[1],
                "images_per_second": window_images / max(elapsed, 1e-9),
                "skipped_steps": state.skipped_steps,
            }
            accelerator.log(scalars, step=state.step)
            bar.set_postfix(
                L_IG=f"{scalars['loss/L_IG']:.3f}",
                L_ITA=f"{scalars['loss/L_ITA']:.3f}",
                img_s=f"{scalars['images_per_second']:.0f}",
            )
            window_start, window_images = time.perf_counter(), 0

        out_of_time = t.max_minutes > 0 and state.seconds > 60 * t.max_minutes
        last = state.step == t.max_steps or out_of_time
        if t.validate_every and state.step % t.validate_every == 0 or last:
            validation_start = time.perf_counter()
            if accelerator.is_main_process:
                with ema.applied():
                    result = validate(pipe, val_set, config, run_dir, state.step)
                state.history.append(result)
                if "zero_shot_top1" in result:
                    accelerator.log({"val/zero_shot_top1": result["zero_shot_top1"]}, step=state.step)
                    bar.write(f"step {state.step}: validation zero-shot top-1 {result['zero_shot_top1']:.2f}%")
            model.train()
            window_start += time.perf_counter() - validation_start  # images/s counts training time only
        if state.step % t.checkpoint_every == 0 or last:
            state.position = BatchPosition(stream.position.epoch, stream.position.offset)
            save_checkpoint(accelerator, run_dir, objective, optimizer, lr_schedule, ema, state, t.keep_checkpoints)
        if out_of_time:
            accelerator.print(f"stopping at step {state.step}: train.max_minutes={t.max_minutes} reached")
            break

    bar.close()
    model_dir = run_dir / "model"
    if accelerator.is_main_process:
        with ema.applied():
            pipe.save_pretrained(model_dir)
        (run_dir / "train_summary.json").write_text(
            json.dumps(
                {
                    "steps": state.step,
                    "train_seconds": state.seconds,
                    "skipped_steps": state.skipped_steps,
                    "validation": state.history,
                },
                indent=2,
            )
            + "\n"
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return model_dir


@torch.no_grad()
def validate(pipe: DiffDisPipeline, val_set: LabelledImages, config: Config, run_dir: Path, step: int) -> dict:
    """Zero-shot accuracy on held-out training images and a grid of generated samples (one row per class)."""
    t = config.train
    pipe.model.eval()
    record = {"step": step}
    if pipe.can_discriminate:
        subset = val_set.subset(torch.arange(min(t.val_images, len(val_set))))
        result = zero_shot(pipe, subset, num_inference_steps=t.val_steps, seed=0)
        record.update(zero_shot_top1=result.accuracy, val_images=len(subset), val_steps=t.val_steps)
    if pipe.can_generate:
        per_class = 8
        prompts = [f"a photo of a {name}." for name in val_set.class_names for _ in range(per_class)]
        images = pipe.generate(prompts, num_inference_steps=25, seed=0)
        rows = [images[i * per_class : (i + 1) * per_class] for i in range(len(val_set.class_names))]
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        image_grid(rows, val_set.class_names).save(run_dir / "samples" / f"step_{step:07d}.png")
    return record


def save_checkpoint(accelerator, run_dir, objective, optimizer, lr_schedule, ema, state: TrainState, keep: int) -> None:
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    folder = run_dir / "checkpoints"
    final = folder / f"step_{state.step:07d}"
    tmp = folder / f"step_{state.step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in accelerator.unwrap_model(objective).state_dict().items()}
    save_file(weights, tmp / "model.safetensors")
    save_file({k: v.cpu().contiguous() for k, v in ema.state_dict().items()}, tmp / "ema.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(lr_schedule.state_dict(), tmp / "lr_scheduler.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    meta = {
        "step": state.step,
        "seconds": state.seconds,
        "skipped_steps": state.skipped_steps,
        "epoch": state.position.epoch,
        "offset": state.position.offset,
        "history": state.history,
    }
    (tmp / "state.json").write_text(json.dumps(meta, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(p for p in folder.glob("step_*") if not p.name.endswith(".tmp"))[:-keep]:
        shutil.rmtree(old)


def load_checkpoint(folder: Path, objective, optimizer, lr_schedule, ema) -> TrainState:
    objective.load_state_dict(load_file(folder / "model.safetensors"))
    ema.load_state_dict(load_file(folder / "ema.safetensors"))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    lr_schedule.load_state_dict(torch.load(folder / "lr_scheduler.pt", weights_only=True))
    torch.set_rng_state(torch.load(folder / "rng.pt", weights_only=True)["torch"])
    meta = json.loads((folder / "state.json").read_text())
    return TrainState(
        step=meta["step"],
        seconds=meta["seconds"],
        skipped_steps=meta["skipped_steps"],
        position=BatchPosition(meta["epoch"], meta["offset"]),
        history=meta["history"],
    )
