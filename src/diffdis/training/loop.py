"""The training loop (accelerate): both tasks on every mini-batch, EMA, validation, checkpoints and resume.

`train()` reads top to bottom as: start (or resume) the run, then per step: one optimizer step, and when due a
log line, a validation, a checkpoint; at the end the EMA weights are exported.

Run folder:
    config.json                 the resolved Config of the run (the one its latest checkpoint was trained with)
    checkpoints/step_NNNNNNN/   see checkpoint.py (atomic, last train.keep_checkpoints kept, damaged ones skipped)
    logs/                       TensorBoard: losses, gradient norm, logit scale, learning rates, images/s, validation
                                (one run across resumes; its settings are logged once, when the run starts)
    train_log.jsonl             the same scalars as text, one JSON object per logging step
    train.log                   what the run printed (progress lines, validation, resumes, changes), timestamped
    samples/step_NNNNNNN.png    a generated grid, one row per class (or per prompt)
    model/                      the final pipeline (EMA weights), loadable with DiffDisPipeline.from_pretrained, with
                                a copy of train_summary.json and, for labelled built-in data, vocabulary.json (the
                                class names and templates of its captions) and a model card (README.md)
    train_summary.json          steps, time, skipped steps and samples, accepted config changes, validation history,
                                memory (bytes of weights, gradients, moments, EMA; peak memory) and step times

A resume that has no step left to run leaves model/ as it is (its config is the one its weights were trained
with) and records no config change.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DistributedType
from accelerate.utils import gather_object

from ..config import FROM_INIT, Config, ConfigError
from ..data.builtin import builtin
from ..data.datasets import LabelledImages
from ..data.emoji.packages import cache_root
from ..data.sources import MemoryBatches, check_data, training_batches
from ..factory import CONFIG_NAME
from ..image_features import training_features
from ..model_card import write_model_card
from ..models.encoders import MINILM
from ..objective import DiffDisObjective
from ..pipeline import DiffDisPipeline
from ..provenance import provenance
from ..utils.optional import require
from .checkpoint import TrainState, checkpoints, resume, save_checkpoint
from .errors import TrainingStopped
from .gradients import combine_loss_gradients, set_aside_gradients
from .init import build_pipeline, resolve_config
from .memory import held_bytes, memory_record, peak_resident_mb
from .optim import EMA, apply_recipe, lr_lambda, parameter_groups
from .parallel import Replicas, parallel_for
from .progress import LossMeter, Progress
from .run_config import check_resume_config
from .validation import validation_record

Scorers = tuple[Callable[[DiffDisPipeline], dict[str, float]], ...]


def train(config: Config, run_dir: str | Path, progress: bool = True, scorers: Scorers = ()) -> Path:
    """Train (or resume) the run in `run_dir`; returns the folder of the saved pipeline. `scorers`: extra
    measurements of the EMA model at every validation (each pipe -> {name: value}, added to the validation
    record; the comparison study's learning curves)."""
    run = _start(config, Path(run_dir), progress)
    run.scorers = scorers
    t, state = run.config.train, run.state
    steps = iter(run.batches)
    segment_start, seconds_before = time.perf_counter(), state.seconds
    while state.step < t.max_steps:
        _optimizer_step(run, next(steps))
        state.seconds = seconds_before + time.perf_counter() - segment_start
        out_of_time = t.max_minutes > 0 and state.seconds > 60 * t.max_minutes
        last = state.step == t.max_steps or out_of_time
        if state.step % t.log_every == 0 or last:
            _log(run)
        if t.validate_every and state.step % t.validate_every == 0 or (last and t.final_validation):
            _validation(run)
        if state.step % t.checkpoint_every == 0 or last:
            _checkpoint(run)
        if out_of_time:
            run.progress.write(
                f"stopping at step {state.step} of {t.max_steps}: train.max_minutes={t.max_minutes} reached"
            )
            break
    return _finish(run)


# ------------------------------------------------------------------------------------------------ the run
@dataclass
class _Run:
    """Everything one training run holds between its steps."""

    config: Config
    dir: Path
    accelerator: Accelerator
    parallel: Replicas  # parallel.py: how the processes share the work (Replicas or Shards)
    pipe: DiffDisPipeline
    objective: torch.nn.Module  # DDP-wrapped by accelerate on several processes, or sharded (sharding.py)
    optimizer: torch.optim.Optimizer
    lr_schedule: torch.optim.lr_scheduler.LambdaLR
    ema: EMA
    state: TrainState
    batches: object  # data/sources.py: MemoryBatches or FileBatches
    val_set: LabelledImages | None
    meter: LossMeter
    progress: Progress
    start_step: int = 0  # the step this segment of the run started from
    bad_streak: int = 0
    scorers: Scorers = ()
    held: dict | None = None  # training/memory.py: bytes of weights, gradients, moments, EMA (first step)
    steps_peak_mb: float | None = None  # peak resident set before this segment's first validation or checkpoint
    step_seconds: list[float] = field(default_factory=list)  # this segment's


def make_accelerator(config: Config, run_dir: Path) -> Accelerator:
    require("tensorboard", "train")  # the run's logs (accelerate would fail later, without saying how to fix it)
    return Accelerator(
        mixed_precision=config.train.mixed_precision,
        log_with="tensorboard",
        project_dir=str(run_dir),
        cpu=not torch.cuda.is_available(),
    )


def check_parallelism(accelerator: Accelerator, config: Config) -> str | None:
    """Refuse a parallel setting this loop cannot train correctly; return a warning when an `accelerate config`
    asked for sharding that accelerate does not do on CPU processes (it runs DDP instead, silently)."""
    distributed = accelerator.distributed_type
    if distributed == DistributedType.FSDP:
        raise ConfigError(
            "accelerate is configured for FSDP, which would wrap the model behind this loop's EMA and checkpoints "
            "(the EMA would keep averaging parameters FSDP replaced). Shard with the loop's own FSDP instead: "
            "choose multi-GPU in `accelerate config` and pass --set train.sharding=fsdp (docs/training.md)"
        )
    if distributed == DistributedType.DEEPSPEED:
        raise ConfigError(
            "accelerate is configured for DeepSpeed, which this training loop does not support (its EMA, "
            "checkpoints and gradient handling assume a plain torch optimizer). Choose multi-GPU in `accelerate "
            "config`, with --set train.sharding=fsdp to shard the training state; docs/training.md lists the levers"
        )
    if config.train.sharding == "fsdp" and accelerator.num_processes < 2:
        raise ConfigError(
            "train.sharding=fsdp shards the training state over several processes, and this run has one: launch "
            "it with `accelerate launch --multi_gpu --num_processes N` (N >= 2), or leave train.sharding=none"
        )
    asked = [name for name in ("FSDP", "DEEPSPEED") if os.environ.get(f"ACCELERATE_USE_{name}", "").lower() == "true"]
    if asked and distributed == DistributedType.MULTI_CPU and config.train.sharding != "fsdp":
        return (
            f"accelerate was configured for {asked[0]}, which it does not do on CPU processes: this run is DDP over "
            "gloo, every process holding the whole model (--set train.sharding=fsdp shards it)"
        )
    return None


def preflight(config: Config) -> None:
    """Refuse a run whose inputs are missing, before any compute: the data, and the model folders it names."""
    config.validate()
    check_data(config)
    m, t = config.model, config.train
    named = (
        ("train.init_from", t.init_from),
        ("model.text_encoder", m.text_encoder),
        ("model.autoencoder", m.autoencoder),
    )
    for key, value in named:
        if value not in ("", MINILM, "none", FROM_INIT) and not Path(value).exists():
            raise FileNotFoundError(f"{key}={value!r} does not exist")


def _hparams(config: Config) -> dict:
    """The config as flat scalars, for TensorBoard."""
    flat = {f"{section}.{k}": v for section in ("model", "train") for k, v in config.to_dict()[section].items()}
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat.items()}


def _start(config: Config, run_dir: Path, progress: bool) -> _Run:
    """Check everything, build the model, optimizer and data stream, and resume from the newest checkpoint."""
    preflight(config)
    accelerator = make_accelerator(config, run_dir)
    parallelism_warning = check_parallelism(accelerator, config)
    rank, world = accelerator.process_index, accelerator.num_processes
    with accelerator.main_process_first():  # a single-file SD checkpoint is converted once
        config = resolve_config(config, run_dir)
        changes = check_resume_config(run_dir, config) if checkpoints(run_dir) else []
        torch.manual_seed(config.train.seed)  # the same initial weights on every process
        pipe = build_pipeline(config, run_dir)
    t = config.train
    if accelerator.is_main_process and not checkpoints(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        config.to_json(run_dir / "config.json")

    pipe.to(accelerator.device)
    if t.gradient_checkpointing:
        pipe.model.unet.enable_gradient_checkpointing()
    objective = DiffDisObjective.from_pipeline(pipe, t, rank, world).to(accelerator.device)
    image_encoder = objective.image_encoder[0] if objective.align is not None else None  # REPA's targets
    parallel = parallel_for(accelerator, config)
    parallel.distribute(objective, pipe.model.sharding_units())  # before the optimizer and EMA, which hold its parts
    pipe.model.train()
    optimizer = torch.optim.AdamW(parameter_groups(objective, t))
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(t.warmup_steps, t.max_steps))
    ema = EMA(objective, t.ema_decay)
    state, resumed_from = resume(run_dir, objective, optimizer, lr_schedule, ema)
    state.segments.append({"from_step": state.step, **provenance()})  # which code trained which steps
    progress = Progress(progress, accelerator.is_main_process, t.max_steps, state.step, run_dir / "train.log")
    if parallelism_warning:
        progress.write(parallelism_warning)
    if resumed_from is not None:
        progress.write(f"resuming from {resumed_from} (step {state.step})")
        apply_recipe(optimizer, lr_schedule, t)
    for key, before, now in changes if state.step < t.max_steps else ():  # a change no step follows applies to none
        state.config_changes.append({"step": state.step, "key": key, "from": before, "to": now})
        progress.write(f"{key} changed from {before!r} to {now!r}; it applies from step {state.step}")
    objective, optimizer = parallel.wrap(objective, optimizer)
    # The settings go to TensorBoard once; a resume appends to the same run instead of adding an hparams folder.
    accelerator.init_trackers("logs", config=_hparams(config) if resumed_from is None else None)

    data_state = state.data[rank] if len(state.data) == world else None
    if state.step and data_state is None:
        progress.write(f"the checkpoint was written by {len(state.data)} processes: the data stream restarts")
    batches, val_set = training_batches(config, rank, world, data_state)
    # A built-in set's captions are encoded once per machine, not at the start of every run; when the run draws
    # fewer captions than the set has (a short test), encoding them all first would cost more than it saves.
    if (
        isinstance(batches, MemoryBatches)
        and len(captions := batches.data.all_captions()) <= t.max_steps * t.batch_size
    ):
        pipe.text_encoder.preload(captions, cache_root() / "text")
    if image_encoder is not None and isinstance(batches, MemoryBatches):  # built-in sets: cached, from sharp sources
        with accelerator.main_process_first():
            batches.features = training_features(config, image_encoder, log=progress.write).maps
    return _Run(
        config,
        run_dir,
        accelerator,
        parallel,
        pipe,
        objective,
        optimizer,
        lr_schedule,
        ema,
        state,
        batches,
        val_set,
        LossMeter(),
        progress,
        start_step=state.step,
    )


# ------------------------------------------------------------------------------------------- one step
def step_generator(seed: int, step: int, micro: int, device: torch.device) -> torch.Generator:
    """The generator of one micro-batch's random draws: a function of (seed, step, micro-batch) alone, so a
    resumed run draws exactly what an uninterrupted one would, on any number of processes."""
    state = np.random.SeedSequence([seed, step, micro]).generate_state(2, dtype=np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0] >> np.uint64(1)))


def _optimizer_step(run: _Run, micro_batches: list[dict]) -> None:
    """Forward and backward over the step's micro-batches, then one update (or a counted skip)."""
    acc, t, state = run.accelerator, run.config.train, run.state
    started = time.perf_counter()
    split = _splits_losses(run)
    ita_grads = None
    for micro, batch in enumerate(micro_batches):
        if not state.prompts and run.val_set is None:
            state.prompts = list(batch["captions"][:8])
        generator = step_generator(t.seed, state.step, micro, acc.device)
        # DDP all-reduces the gradients on the last micro-batch only; split steps all-reduce each loss's own. A
        # sharded objective reduce-scatters after every backward pass (no_sync leaves it as it is).
        syncing = micro == len(micro_batches) - 1 and not split
        with nullcontext() if syncing else acc.no_sync(run.objective), acc.autocast():
            out = run.objective(batch, generator)
            if split:  # λ·L_ITA's gradients are set aside, then L_IG's accumulate in .grad
                acc.backward(out["terms"][1] / len(micro_batches))
                ita_grads = set_aside_gradients(run.objective, ita_grads)
                acc.backward(out["terms"][0] / len(micro_batches))
            else:
                acc.backward(out["loss"] / len(micro_batches))
        run.meter.add(out, images=len(batch["captions"]) * acc.num_processes)
    if split:
        ig_norm, ita_norm, grad_norm = combine_loss_gradients(
            run.objective, ita_grads, acc.num_processes, t.grad_clip, t.clip_per_loss
        )
        run.meter.add_norms({"grad_norm/L_IG": ig_norm.item(), "grad_norm/L_ITA": ita_norm.item()})
    else:
        grad_norm = run.parallel.clip(run.objective, t.grad_clip)
    run.meter.add_norms({"grad_norm/total": grad_norm.item()})
    if acc.scaler is not None:  # fp16: the GradScaler skips an overflowing update itself and lowers its scale
        run.optimizer.step()
        applied = not acc.optimizer_step_was_skipped
    else:
        applied = bool(torch.isfinite(grad_norm))
        if applied:
            run.optimizer.step()
    if run.held is None and applied:  # gradients and moments exist now, until zero_grad
        run.held = held_bytes(acc.unwrap_model(run.objective), run.optimizer, run.ema.shadow)
    run.optimizer.zero_grad(set_to_none=True)
    run.lr_schedule.step()
    state.step += 1
    run.step_seconds.append(time.perf_counter() - started)
    run.meter.seconds += run.step_seconds[-1]
    run.progress.step()
    if applied:
        acc.unwrap_model(run.objective).clamp_logit_scale()
        run.ema.update()
        run.bad_streak = 0
        return
    state.skipped_steps += 1
    if acc.scaler is not None and not _loss_was_non_finite(acc, out):
        return  # an fp16 overflow: the scaler's normal search for its scale, not a sign of divergence
    run.bad_streak += 1
    if run.bad_streak >= t.max_bad_steps:
        saved = checkpoints(run.dir)
        raise TrainingStopped(
            f"{run.bad_streak} non-finite steps in a row, the last at step {state.step} (the weights were not "
            f"updated by them); last good checkpoint: {saved[-1] if saved else 'none'}. Lower the learning "
            "rates or check the data, then run the same command to resume from that checkpoint"
        )


def _splits_losses(run: _Run) -> bool:
    """Whether this step takes the gradients of L_IG and λ·L_ITA separately: for per-loss clipping, and on
    logging steps to log each loss's gradient norm (joint model only; fp16's loss scaler needs one backward)."""
    t = run.config.train
    variant = run.config.model.declared
    joint = variant.generates and variant.discriminates and run.accelerator.scaler is None
    return joint and (t.clip_per_loss or (run.state.step + 1) % t.log_every == 0)


def _loss_was_non_finite(acc: Accelerator, out: dict[str, torch.Tensor]) -> bool:
    """Whether any process's last loss was non-finite (a collective call, so that every process agrees)."""
    flag = torch.tensor([0.0 if torch.isfinite(out["loss"]) else 1.0], device=acc.device)
    return bool(acc.reduce(flag, "sum").item() > 0)


# ------------------------------------------------------------------------------------- when due
def _log(run: _Run) -> None:
    acc, state = run.accelerator, run.state
    scalars = run.meter.read(acc)  # every process takes part
    skipped = _sum_counts(gather_object([run.batches.skipped()]))
    lrs = {f"lr/{g['name']}": lr for g, lr in zip(run.optimizer.param_groups, run.lr_schedule.get_last_lr())}
    scalars.update(lrs, skipped_steps=state.skipped_steps, skipped_samples=sum(skipped.values()))
    logit_scale = acc.unwrap_model(run.objective).logit_scale_value()
    if logit_scale is not None:  # the gen baseline has none
        scalars["logit_scale"] = logit_scale
    acc.log(scalars, step=state.step)
    if acc.is_main_process:
        with open(run.dir / "train_log.jsonl", "a") as log:
            log.write(json.dumps({"step": state.step, **scalars}) + "\n")
    run.progress.log(state.step, scalars)
    if skipped:
        run.progress.write(f"step {state.step}: skipped samples so far: {skipped}")


def _validation(run: _Run) -> None:
    acc, t, state = run.accelerator, run.config.train, run.state
    run.steps_peak_mb = run.steps_peak_mb or peak_resident_mb()
    # A sharded objective's units gather their weights inside their own forward calls, so every process validates,
    # the same way (the main one keeps the record and writes the grid); otherwise the main process alone.
    if acc.is_main_process or run.parallel.collective:
        with run.ema.applied(), run.parallel.for_inference(run.objective):
            record = validation_record(
                run.pipe,
                run.val_set,
                state.prompts,
                t.val_images,
                t.val_steps,
                run.dir / "samples" if acc.is_main_process else None,
                state.step,
                t.sample_rows,
            )
            for score in run.scorers:
                record.update(score(run.pipe))
    if acc.is_main_process:
        state.history.append(record)
        if "val_top1" in record:
            acc.log({"val/top1": record["val_top1"]}, step=state.step)
            held = len(t.holdout_classes)
            which = f"all classes, {held} of them held out of training" if held else "seen classes"
            run.progress.write(f"step {state.step}: validation top-1 {record['val_top1']:.2f}% ({which})")
    run.pipe.model.train()


def _checkpoint(run: _Run) -> None:
    acc, t, state = run.accelerator, run.config.train, run.state
    run.steps_peak_mb = run.steps_peak_mb or peak_resident_mb()
    state.data = gather_object([run.batches.state])
    parts = (run.objective, run.optimizer, run.lr_schedule, run.ema)
    save_checkpoint(acc, run.dir, *parts, state, t.keep_checkpoints, collective=run.parallel.collective)
    if acc.is_main_process:
        run.config.to_json(run.dir / "config.json")  # from now on, the config the newest checkpoint was trained with


def _finish(run: _Run) -> Path:
    """Export the EMA weights, write the summary, verify the replicas agree, and release the processes."""
    acc, state = run.accelerator, run.state
    skipped = _sum_counts(gather_object([run.batches.skipped()]))
    # DDP keeps the replicas equal: verify, do not assume
    checksums = gather_object([run.parallel.checksum(run.objective)])
    # Each process's peak resident set before its first checkpoint or validation and over the whole segment: what
    # a checkpoint's gathering costs the processes that do not write it.
    peaks = gather_object([{"steps_peak_resident_mb": run.steps_peak_mb, "peak_resident_mb": peak_resident_mb()}])
    model_dir = run.dir / "model"
    trained = state.step > run.start_step or not (model_dir / CONFIG_NAME).exists()
    if acc.is_main_process and not trained:
        run.progress.write(f"nothing to train: the run is at train.max_steps={state.step}; {model_dir} is unchanged")
    if trained:
        with run.ema.applied():  # saved within: a replica's export is the live model
            exported = run.parallel.exportable(run.objective, run.pipe)  # a collective call; the main process saves
            scale = acc.unwrap_model(run.objective).logit_scale_value()
            if exported is not None:
                if scale is not None:  # the temperature that turns the model's cosines into probabilities
                    exported.model.logit_scale.fill_(scale)
                exported.save_pretrained(model_dir)
    if acc.is_main_process and trained:
        summary = {
            "steps": state.step,
            "train_seconds": state.seconds,
            "skipped_steps": state.skipped_steps,
            "skipped_samples": skipped,
            "processes": acc.num_processes,
            "memory": {  # the main process's, and every process's peaks
                **memory_record(run.held, run.step_seconds, acc.device, run.steps_peak_mb),
                "per_process": peaks,
            },
            "parameter_checksums": checksums,
            "config_changes": state.config_changes,
            "trained_by": state.segments,
            "validation": state.history,
        }
        for folder in (run.dir, model_dir):
            (folder / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        vocabulary = _vocabulary(run.config)
        if vocabulary:
            (model_dir / "vocabulary.json").write_text(json.dumps(vocabulary, indent=2) + "\n")
        write_model_card(model_dir)  # again, now with the run's summary and vocabulary beside it
        if skipped:
            run.progress.write(f"skipped samples: {skipped}")
    run.progress.close()
    if len(set(checksums)) > 1:
        raise RuntimeError(f"the processes' parameters differ at the end of training (checksums {checksums})")
    acc.wait_for_everyone()
    acc.end_training()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # else processes that imported diffusers may abort at exit
    return model_dir


def _vocabulary(config: Config) -> dict | None:
    """What the model's training captions called each class or concept, for built-in data."""
    source = config.train.sources[0]
    return builtin(source.kind).vocabulary(config) if source.named else None


def _sum_counts(per_process: list[dict[str, int]]) -> dict[str, int]:
    total = Counter()
    for counts in per_process:
        total.update(counts)
    return dict(total)
