"""Several processes (DDP over gloo on this CPU): replicas stay equal, the result matches one process with the
same global batch, file sources stream into training, and train.sharding=fsdp shards the training state."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch
from helpers import ENV, SMALL, train_command
from safetensors.torch import load_file

from diffdis import DiffDisPipeline
from diffdis.data.pack import pack_samples, write_shards

pytestmark = pytest.mark.slow  # trains or serves: `make test` runs it, `make test-fast` does not


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    write_shards(pack_samples("fashion-mnist:test", 16, limit=640), folder, shard_size=80)
    return f"wds:{folder}/{{00000..00007}}.tar"


def _weights(run) -> dict[str, torch.Tensor]:
    unet = load_file(run / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    return {**unet, **load_file(run / "model" / "text_stream.safetensors")}


def _run(out, processes, overrides, max_steps, env=ENV) -> str:
    done = subprocess.run(train_command(out, processes, overrides, max_steps), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-12000:]
    return done.stdout + done.stderr


def _logged(run) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    overrides = SMALL + ["train.batch_size=16", "train.validate_every=0", "train.val_images=16", "train.ema_decay=0"]
    for processes in (1, 2):
        _run(tmp_path / f"p{processes}", processes, overrides + ["train.log_every=1"], 6)
    # the logged losses are means over the global batch, not one process's half of it
    for one, two in zip(_logged(tmp_path / "p1"), _logged(tmp_path / "p2")):
        for key in ("loss/L_IG", "loss/L_ITA"):
            assert abs(one[key] - two[key]) < 1e-4 * max(1.0, abs(one[key])), (one["step"], key)
    two = json.loads((tmp_path / "p2" / "train_summary.json").read_text())
    assert two["processes"] == 2 and len(set(two["parameter_checksums"])) == 1  # the replicas are identical
    one, both = _weights(tmp_path / "p1"), _weights(tmp_path / "p2")
    assert one.keys() == both.keys()
    worst = max((one[k] - both[k]).abs().max().item() for k in one)
    assert worst < 1e-4, worst  # only the order of floating-point sums differs


def test_two_processes_stream_shards_and_resume(tmp_path, shards):
    overrides = SMALL + [
        f"train.data={shards}",
        "train.batch_size=16",
        "train.num_workers=2",
        "train.shuffle_buffer=32",
        "train.validate_every=0",
        "train.checkpoint_every=2",
    ]
    _run(tmp_path / "run", 2, overrides, 3)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_0000003" / "state.json").read_text())
    assert len(state["data"]) == 2 and all(d["consumed"] == 3 for d in state["data"])  # one position per process
    assert "resuming from" in _run(tmp_path / "run", 2, overrides, 5)
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 5 and summary["skipped_samples"] == {}
    assert len(set(summary["parameter_checksums"])) == 1
    assert list((tmp_path / "run" / "samples").glob("*.png"))  # grid from the first captions: no labelled set


@pytest.mark.parametrize("variant", ["gen", "dis", "clip"])
def test_every_baseline_trains_on_two_processes(tmp_path, variant):
    """DDP without find_unused_parameters fails at the second step when a trainable parameter gets no gradient."""
    overrides = SMALL + [f"model.variant={variant}", "train.batch_size=16", "train.validate_every=0"]
    _run(tmp_path / variant, 2, overrides + ["train.val_images=16", "train.ema_decay=0"], 3)
    summary = json.loads((tmp_path / variant / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["processes"] == 2 and len(set(summary["parameter_checksums"])) == 1


def test_an_fsdp_config_on_cpu_processes_trains_as_ddp_and_says_so(tmp_path):
    """accelerate keeps FSDP for accelerator devices: on CPU processes it drops the FSDP settings and runs DDP
    without a word, so the run says it, rather than leaving the user to think the model is sharded."""
    overrides = SMALL + ["train.batch_size=16", "train.validate_every=0", "train.val_images=16", "train.ema_decay=0"]
    env = {**ENV, "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}  # what `accelerate launch --use_fsdp` sets
    printed = _run(tmp_path / "run", 2, overrides, 2, env)
    assert "accelerate was configured for FSDP, which it does not do on CPU processes: this run is DDP" in printed
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["processes"] == 2 and len(set(summary["parameter_checksums"])) == 1


def test_sharded_training_matches_ddp_and_resumes_exactly_sharded_or_not(tmp_path):
    """train.sharding=fsdp: each process holds half of the training state, the result is DDP's with the same global
    batch (EMA on; step 2 takes the two losses' gradients apart to log their norms), and a sharded checkpoint
    resumes exactly, sharded or as DDP."""
    replicated = SMALL + [
        "train.batch_size=16",
        "train.validate_every=0",
        "train.val_images=16",
        "train.log_every=2",
        "train.checkpoint_every=2",
    ]
    sharded = replicated + ["train.sharding=fsdp"]
    _run(tmp_path / "ddp", 2, replicated, 3)
    _run(tmp_path / "fsdp", 2, sharded, 3)
    _run(tmp_path / "part", 2, sharded, 2)
    shutil.copytree(tmp_path / "part", tmp_path / "part-as-ddp")
    assert "resuming from" in _run(tmp_path / "part", 2, sharded, 3)
    assert "train.sharding changed from 'fsdp' to 'none'" in _run(tmp_path / "part-as-ddp", 2, replicated, 3)

    logs = _logged(tmp_path / "ddp"), _logged(tmp_path / "fsdp")
    assert [log["step"] for log in logs[1]] == [2, 3] and "grad_norm/L_ITA" in logs[1][0]  # step 2: split
    for ddp, fsdp in zip(*logs):
        assert ddp.keys() == fsdp.keys()
        for key in (k for k in ddp if k.startswith(("loss/", "grad_norm/", "logit_scale"))):
            assert abs(ddp[key] - fsdp[key]) < 1e-5 * max(1.0, abs(ddp[key])), (ddp["step"], key)
    ddp, fsdp = _weights(tmp_path / "ddp"), _weights(tmp_path / "fsdp")
    assert ddp.keys() == fsdp.keys()
    assert max((ddp[k] - fsdp[k]).abs().max().item() for k in ddp) < 1e-5  # only the order of sums differs
    assert all(torch.equal(fsdp[k], v) for k, v in _weights(tmp_path / "part").items())
    assert max((fsdp[k] - v).abs().max().item() for k, v in _weights(tmp_path / "part-as-ddp").items()) < 1e-5

    summaries = [json.loads((tmp_path / run / "train_summary.json").read_text()) for run in ("ddp", "fsdp")]
    assert summaries[0]["validation"] == summaries[1]["validation"]  # every process validated; the same record
    assert list((tmp_path / "fsdp" / "samples").glob("step_*.png"))  # the main process wrote the grid
    exported = DiffDisPipeline.from_pretrained(tmp_path / "fsdp" / "model")  # the folder loads as any other
    assert exported.can_generate and exported.can_discriminate
    held = {run: json.loads((tmp_path / run / "train_summary.json").read_text())["memory"] for run in ("ddp", "fsdp")}
    for key in ("parameter_bytes", "gradient_bytes", "optimizer_bytes", "ema_bytes"):
        assert abs(2 * held["fsdp"][key] - held["ddp"][key]) < 0.01 * held["ddp"][key], key  # half per process


def test_a_sharded_checkpoint_is_kept_only_by_the_process_that_writes_it(tmp_path):
    """Gathering a sharded checkpoint costs the other processes one whole tensor at a time, not the whole state.
    Measured with this test's settings (31M parameters, 120 MB of weights): the checkpoint and export raised process
    1's peak resident set by 205 MB when every process kept what it gathered (process 0's: 217 MB), and by 0 MB
    now (process 0's: 235 MB)."""
    wide = ["model.block_out_channels=128,256,256", "model.text_max_length=16", "train.batch_size=4"]
    settings = wide + ["train.sharding=fsdp", "train.validate_every=0", "train.final_validation=false"]
    _run(tmp_path / "run", 2, [*settings, "train.checkpoint_every=100", "train.log_every=100"], 2)
    memory = json.loads((tmp_path / "run" / "train_summary.json").read_text())["memory"]
    weights_mb = 2 * memory["parameter_bytes"] / 2**20  # whole weights: two processes hold half each
    grew = [p["peak_resident_mb"] - p["steps_peak_resident_mb"] for p in memory["per_process"]]
    assert len(grew) == 2 and weights_mb > 100
    assert grew[0] > weights_mb, (grew, weights_mb)  # the writer holds the whole state to save it
    assert grew[1] < 0.5 * grew[0], (grew, weights_mb)  # the other process does not (before: 205 against 217 MB)
