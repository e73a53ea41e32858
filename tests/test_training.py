"""The training loop's parts: fp16 overflow, optimizer groups, the logit-scale bound, resume after a config change,
validation data, progress output, and the checks on precomputed encodings."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from accelerate import Accelerator, DistributedType
from helpers import reset_accelerate_state, run_overrides
from PIL import Image
from safetensors.torch import load_file

from diffdis import DiffDisPipeline, preset
from diffdis.cli import main
from diffdis.config import ConfigError
from diffdis.data.sources import training_batches
from diffdis.objective import DiffDisObjective
from diffdis.training import loop, train
from diffdis.training.optim import parameter_groups


@pytest.mark.slow
def test_fp16_overflow_is_left_to_the_grad_scaler(tmp_path, idx_dir, monkeypatch):
    """accelerate has no fp16 on a CPU, so the test gives the loop the GradScaler accelerate builds for a GPU (a
    CPU one) and drives the same calls: scaled backward, unscale in clip_grad_norm_, the scaler's step and update.
    Half-precision autocast itself is left out (slow on CPUs, and not what is tested). The first step's gradient
    overflows (one infinite gradient, as an fp16 overflow gives) while its loss is finite."""

    def fp16_accelerator(config, run_dir):
        reset_accelerate_state()  # earlier runs in this process set "no"
        accelerator = Accelerator(mixed_precision="fp16", cpu=True, project_dir=str(run_dir), log_with="tensorboard")
        accelerator.scaler = torch.amp.GradScaler("cpu")
        accelerator.native_amp = True
        accelerator.autocast = nullcontext
        return accelerator

    loss, calls = DiffDisObjective.loss, []

    def overflowing_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            self.logit_scale.register_hook(lambda g: g * float("inf") if len(calls) == 1 else g)
        return loss(self, *args, **kwargs)

    monkeypatch.setattr(loop, "make_accelerator", fp16_accelerator)
    monkeypatch.setattr(DiffDisObjective, "loss", overflowing_once)
    config = preset("tiny", run_overrides(idx_dir, "train.max_steps=3", "train.max_bad_steps=1", "train.ema_decay=0"))
    try:
        train(config, tmp_path / "run", progress=False)  # before the fix: the second step raised in unscale_()
    finally:
        reset_accelerate_state()  # the process's other runs use no mixed precision
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["skipped_steps"] == 1  # the overflow, skipped by the scaler


def test_weight_decay_only_on_matrices_and_kernels(small_config):
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(small_config)
    objective = DiffDisObjective.from_pipeline(pipe, small_config.train)
    groups = parameter_groups(objective, dataclasses.replace(small_config.train, weight_decay=0.1))
    names = {id(p): n for n, p in objective.named_parameters()}
    decayed = [names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    kept = [names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]]
    assert all(objective.get_parameter(n).ndim >= 2 for n in decayed) and "model.unet.conv_in.weight" in decayed
    assert {"logit_scale", "model.null_latent", "model.unet.conv_in.bias"} <= set(kept)
    assert any("norm" in n for n in kept) and not any("norm" in n or n.endswith("bias") for n in decayed)
    assert sorted(decayed + kept) == sorted(n for n, p in objective.named_parameters() if p.requires_grad)
    assert {g["name"]: g["lr"] for g in groups} == {
        "unet": small_config.train.lr_unet,
        "new": small_config.train.lr_new,
    }


def test_the_logit_scale_keeps_its_gradient_past_its_bound(small_pipeline):
    objective = DiffDisObjective.from_pipeline(small_pipeline, small_pipeline.config.train)
    with torch.no_grad():
        objective.logit_scale.fill_(math.log(150.0))
    e_hat = torch.nn.functional.normalize(torch.randn(4, small_pipeline.model.text_dim), dim=-1)
    e = torch.nn.functional.normalize(torch.randn(4, small_pipeline.model.text_dim), dim=-1)
    objective.contrastive(e_hat, e).backward()
    assert objective.logit_scale.grad.abs() > 0  # clamping inside the loss would make this zero for good
    objective.clamp_logit_scale()
    assert objective.logit_scale.exp().item() == pytest.approx(100.0)


def test_min_snr_weighting_scales_only_the_nearly_clean_timesteps(small_pipeline):
    train_config = small_pipeline.config.train
    plain = DiffDisObjective.from_pipeline(small_pipeline, train_config)
    weighted = DiffDisObjective.from_pipeline(small_pipeline, dataclasses.replace(train_config, snr_gamma=5.0))
    alpha_bar = small_pipeline.scheduler.alphas_cumprod.float()
    snr = alpha_bar / (1 - alpha_bar)
    t = torch.tensor([0, 999])  # SNR about 10^4 (weighted 5/SNR) and about 4e-5 (weight 1)
    eps_hat, eps = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)  # each sample's MSE is 1
    assert plain.generation_loss(eps_hat, eps, t).item() == pytest.approx(1.0)
    assert weighted.generation_loss(eps_hat, eps, t).item() == pytest.approx((5 / snr[0].item() + 1) / 2)
    with pytest.raises(ConfigError, match="snr_gamma"):
        preset("tiny", ["train.snr_gamma=-1"])


@pytest.mark.slow
def test_resume_refuses_a_changed_shape_and_keeps_every_checkpoint(tmp_path, idx_dir, capsys):
    run = tmp_path / "run"
    base = ["train", "--out", str(run), "--checkpoint-every", "2", "--no-progress", "--max-steps", "2"]
    sets = [a for o in run_overrides(idx_dir) for a in ("--set", o)]
    assert main(base + sets) == 0
    saved_config = (run / "config.json").read_text()
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    changed = sets + ["--set", "model.transformer_width=64", "--set", "train.lam=0.5"]
    assert main(base[:-1] + ["4"] + changed) == 2
    err = capsys.readouterr().err
    assert "model.transformer_width: 32 in the run, 64 now" in err and "damaged" not in err
    assert (run / "config.json").read_text() == saved_config  # nothing was written
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


@pytest.mark.slow
def test_resume_accepts_and_records_a_safe_change(tmp_path, idx_dir, capsys):
    run = tmp_path / "run"
    sets = [a for o in run_overrides(idx_dir) for a in ("--set", o)]
    assert (
        main(["train", "--out", str(run), "--checkpoint-every", "2", "--no-progress", "--max-steps", "2", *sets]) == 0
    )
    more = ["--set", "train.lam=0.5", "--set", "train.log_every=1"]
    assert main(["train", "--out", str(run), "--no-progress", "--max-steps", "3", *sets, *more]) == 0
    assert "train.lam changed from 1.0 to 0.5; it applies from step 2" in capsys.readouterr().out
    changes = json.loads((run / "train_summary.json").read_text())["config_changes"]
    assert {"step": 2, "key": "train.lam", "from": 1.0, "to": 0.5} in changes
    assert json.loads((run / "config.json").read_text())["train"]["lam"] == 0.5
    state = json.loads((run / "checkpoints" / "step_0000003" / "state.json").read_text())
    assert state["config_changes"] == changes  # a later resume still knows
    assert json.loads((run / "model" / "train_summary.json").read_text())["config_changes"] == changes
    assert "train.lam changed from 1.0 to 0.5" in (run / "train.log").read_text()
    assert len([p for p in (run / "logs").iterdir() if p.is_dir()]) == 2  # TensorBoard: the first start's hparams only

    # no step left to run: the model folder keeps the config its weights were trained with, and no change is kept
    model_config = (run / "model" / "diffdis_config.json").read_text()
    again = ["train", "--out", str(run), "--no-progress", "--max-steps", "3", *sets, "--set", "train.lam=0.25"]
    assert main(again) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert (run / "model" / "diffdis_config.json").read_text() == model_config
    assert json.loads((run / "train_summary.json").read_text())["config_changes"] == changes


@pytest.mark.slow
def test_run_files_are_readable_by_others_and_the_model_lists_its_class_names(tmp_path, idx_dir):
    run = tmp_path / "run"
    train(preset("tiny", run_overrides(idx_dir, "train.max_steps=1", "train.holdout_classes=shirt")), run, False)
    mask = os.umask(0)
    os.umask(mask)
    weights = [*run.glob("model/**/*.safetensors"), *run.glob("checkpoints/*/*.safetensors")]
    assert len(weights) == 4 and all(p.stat().st_mode & 0o777 == 0o666 & ~mask for p in weights)
    scale = load_file(run / "model" / "text_stream.safetensors")["logit_scale"].item()  # exported for probabilities
    assert scale == pytest.approx(1 / 0.07, rel=0.01)
    vocabulary = json.loads((run / "model" / "vocabulary.json").read_text())
    assert vocabulary["captions"] == "varied" and vocabulary["held_out_classes"] == ["shirt"]
    assert "shirt" not in vocabulary["classes"] and "Trouser" in vocabulary["classes"]["pair of trousers"]


@pytest.mark.slow
def test_the_final_validation_can_be_skipped(tmp_path, idx_dir):
    train(preset("tiny", run_overrides(idx_dir, "train.max_steps=2", "train.final_validation=false")), tmp_path, False)
    assert json.loads((tmp_path / "train_summary.json").read_text())["validation"] == []
    assert not (tmp_path / "samples").exists()


@pytest.mark.slow
def test_a_mismatching_checkpoint_is_named_not_called_damaged(tmp_path, idx_dir):
    run = tmp_path / "run"
    train(preset("tiny", run_overrides(idx_dir, "train.max_steps=2")), run, progress=False)
    (run / "config.json").unlink()  # as in a run folder copied without it
    with pytest.raises(ValueError, match="holds weights of another model.*intact"):
        train(preset("tiny", run_overrides(idx_dir, "train.max_steps=3", "model.transformer_width=64")), run, False)


def test_validation_never_reads_a_test_split(tmp_path, idx_dir):
    for name in ("fashion-mnist", "digits", "shapes-shape"):
        with pytest.raises(ConfigError, match="never a test"):
            preset("tiny", [f"train.val_data={name}"])
    # the default: images held out of the training split, none of which is trained on
    config = preset("tiny", run_overrides(idx_dir))
    batches, val = training_batches(config, 0, 1)
    train_images = batches.data.images.flatten(1)
    assert len(val) == 32 and len(train_images) == 160 - 32
    assert not (val.images.flatten(1)[:, None] == train_images[None]).all(-1).any()


@pytest.mark.slow
def test_validation_on_a_folder_of_the_users_own(tmp_path, idx_dir):
    folder = tmp_path / "val"
    for name in ("dress", "bag"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(folder / name / f"{i}.png")
    config = preset("tiny", run_overrides(idx_dir, "train.max_steps=1", f"train.val_data=classes:{folder}"))
    train(config, tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "train_summary.json").read_text())["validation"][-1]
    assert record["val_images"] == 6 and 0 <= record["val_top1"] <= 100


@pytest.mark.slow
def test_progress_is_plain_lines_when_not_on_a_terminal(tmp_path, idx_dir, capsys):
    train(preset("tiny", run_overrides(idx_dir, "train.max_steps=4", "train.log_every=2")), tmp_path / "run", True)
    captured = capsys.readouterr()
    assert "train:" not in captured.out + captured.err  # no bar (its carriage returns fill log files)
    lines = [line for line in captured.out.splitlines() if line.startswith("step ") and "L_IG" in line]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"] and "L_ITA" in lines[0]
    logged = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2, 4] and {"loss/L_IG", "lr/unet", "lr/new"} <= set(logged[0])
    text_log = (tmp_path / "run" / "train.log").read_text()
    assert "step 2/4  L_IG" in text_log and "step 4/4  L_IG" in text_log  # the run's own text log


def test_precomputed_encodings_of_another_shape_are_named_as_such(small_pipeline):
    encode = DiffDisObjective.from_pipeline(small_pipeline, small_pipeline.config.train).encode
    images = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    batch = {"images": images, "captions": ["a", "b"], "c": torch.zeros(2, 77, 768), "e": torch.zeros(2, 768)}
    with pytest.raises(ValueError, match=r"text precomputed by `diffdis encode` have shape \(77, 768\)"):
        encode(batch)
    wrong_size = {"images": torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "captions": ["a", "b"]}
    with pytest.raises(ValueError, match="latents encoded on the fly") as error:
        encode(wrong_size)
    assert "diffdis encode" not in str(error.value)


def _trained_weights(tmp_path, idx_dir, name: str, *extra: str) -> dict[str, torch.Tensor]:
    config = preset("tiny", run_overrides(idx_dir, "train.max_steps=2", "train.ema_decay=0", *extra))
    model_dir = train(config, tmp_path / name, progress=False)
    return DiffDisPipeline.from_pretrained(model_dir).model.state_dict()


@pytest.mark.slow
def test_per_loss_gradients_sum_to_the_joint_gradient(tmp_path, idx_dir):
    """A step that takes L_IG's and λ·L_ITA's gradients separately (logging steps, per-loss clipping) updates the
    weights as one backward of their sum does, when no clipping bites; both norms are logged."""
    no_clip = "train.grad_clip=1e9"
    split = _trained_weights(tmp_path, idx_dir, "split", no_clip, "train.log_every=1")
    joint = _trained_weights(tmp_path, idx_dir, "joint", no_clip, "train.log_every=1000")
    for key in split:
        torch.testing.assert_close(split[key], joint[key], rtol=1e-4, atol=1e-6)
    logged = [json.loads(line) for line in (tmp_path / "split/train_log.jsonl").read_text().splitlines()]
    assert all(r["grad_norm/L_IG"] > 0 and r["grad_norm/L_ITA"] > 0 for r in logged)


@pytest.mark.slow
def test_per_loss_clipping_gives_each_loss_its_own_budget(tmp_path, idx_dir):
    config = preset(
        "tiny",
        run_overrides(
            idx_dir, "train.max_steps=2", "train.log_every=1", "train.grad_clip=0.01", "train.clip_per_loss=true"
        ),
    )
    train(config, tmp_path / "run", progress=False)
    logged = [json.loads(line) for line in (tmp_path / "run/train_log.jsonl").read_text().splitlines()]
    for r in logged:  # each loss's gradient (norm above 0.01) is clipped to 0.01 alone: their sum is at most 0.02
        assert r["grad_norm/L_IG"] > 0.01 and r["grad_norm/L_ITA"] > 0.01
        assert 0.01 < r["grad_norm/total"] <= 0.02 + 1e-6
    with pytest.raises(ConfigError, match="clip_per_loss"):
        preset("tiny", ["train.clip_per_loss=true", "train.mixed_precision=fp16"])


def test_parallel_settings_the_loop_cannot_train_are_refused_with_what_to_use():
    none, fsdp = preset("tiny"), preset("tiny", ["train.sharding=fsdp"])

    def check(kind, config, processes=2):
        return loop.check_parallelism(SimpleNamespace(distributed_type=kind, num_processes=processes), config)

    for kind, name in ((DistributedType.FSDP, "FSDP"), (DistributedType.DEEPSPEED, "DeepSpeed")):
        with pytest.raises(ConfigError, match=f"configured for {name}.*multi-GPU.*train.sharding=fsdp"):
            check(kind, none)
    with pytest.raises(ConfigError, match="this run has one: launch it with `accelerate launch --multi_gpu"):
        check(DistributedType.NO, fsdp, processes=1)
    assert check(DistributedType.MULTI_CPU, none) is None and check(DistributedType.MULTI_CPU, fsdp) is None
    with pytest.raises(ConfigError, match="fp16's loss scaler does not handle sharded gradients"):
        preset("tiny", ["train.sharding=fsdp", "train.mixed_precision=fp16"])
    with pytest.raises(ConfigError, match="train.sharding='zero3'; use none"):
        preset("tiny", ["train.sharding=zero3"])


def test_an_fsdp_accelerate_config_on_cpu_processes_is_named_as_ddp(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    accelerator = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, num_processes=2)
    warning = loop.check_parallelism(accelerator, preset("tiny"))
    assert warning.startswith("accelerate was configured for FSDP, which it does not do on CPU processes")
    assert "train.sharding=fsdp shards it" in warning
    assert loop.check_parallelism(accelerator, preset("tiny", ["train.sharding=fsdp"])) is None


@pytest.mark.slow
def test_the_checkpoint_a_curve_chooses_exports_with_its_own_weights(tmp_path, idx_dir):
    from diffdis.experiments.release import best_step, checkpoint_run

    run = tmp_path / "run"
    sets = run_overrides(idx_dir, "train.validate_every=2", "train.keep_checkpoints=5", "train.ema_decay=0.9")
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--checkpoint-every",
                "2",
                "--no-progress",
                "--max-steps",
                "6",
                *(a for o in sets for a in ("--set", o)),
            ]
        )
        == 0
    )
    history = json.loads((run / "train_summary.json").read_text())["validation"]
    chosen = best_step(run, key="val_top1", tie="val_top1")
    best = max(p["val_top1"] for p in history)
    assert chosen in (2, 4, 6) and next(p for p in history if p["step"] == chosen)["val_top1"] == best
    # A step that was not the last: its own weights, not the final ones; averaged (EMA) by default, or raw.
    checkpoint = run / "checkpoints" / "step_0000002"
    for averaged, saved in ((True, "ema.safetensors"), (False, "model.safetensors")):
        model = checkpoint_run(run, 2, tmp_path / f"at-2-{averaged}", averaged=averaged)
        weights = load_file(str(checkpoint / saved))
        exported = load_file(str(model / "unet" / "diffusion_pytorch_model.safetensors"))
        assert all(torch.equal(exported[k], weights[f"model.unet.{k}"]) for k in exported)
        assert json.loads((tmp_path / f"at-2-{averaged}" / "train_summary.json").read_text())["steps"] == 2
    ema, raw = (load_file(str(checkpoint / f)) for f in ("ema.safetensors", "model.safetensors"))
    assert not torch.equal(ema["model.unet.conv_in.weight"], raw["model.unet.conv_in.weight"])  # they differ


@pytest.mark.slow
def test_a_runs_checkpoints_are_scored_with_their_ema_and_their_raw_weights(tmp_path, idx_dir, monkeypatch):
    from diffdis.experiments import tuning

    run = tmp_path / "run"
    sets = run_overrides(idx_dir, "train.validate_every=2", "train.keep_checkpoints=5", "train.ema_decay=0.9")
    args = ["train", "--out", str(run), "--checkpoint-every", "2", "--no-progress", "--max-steps", "4"]
    assert main([*args, *(a for o in sets for a in ("--set", o))]) == 0

    class WeightCurve:  # stands in for the emoji curve: a "figure" read off the weights it is given
        def __init__(self, emoji):
            pass

        def __call__(self, pipe):
            return {k: float(pipe.model.unet.conv_in.weight.detach().sum()) for k in tuning.KEYS}

    monkeypatch.setattr(tuning, "EmojiCurve", WeightCurve)
    monkeypatch.setattr(tuning.EmojiData, "load", staticmethod(lambda resolution: None))
    record = tuning.ema_against_raw(run, tmp_path / "ema.json")
    assert [p["step"] for p in record["points"]] == [2, 4] and record["ema_decay"] == 0.9
    for point in record["points"]:
        checkpoint = run / "checkpoints" / f"step_{point['step']:07d}"
        for weights, file in (("ema", "ema.safetensors"), ("raw", "model.safetensors")):
            expected = float(load_file(str(checkpoint / file))["model.unet.conv_in.weight"].sum())
            assert point[weights]["unseen_top1"] == pytest.approx(expected)
        assert point["ema"]["unseen_top1"] != point["raw"]["unseen_top1"]
