"""Exact resume after SIGKILL (1 and 2 processes), damaged checkpoints, non-finite steps, pickles refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ENV, run_overrides, train_command
from safetensors.torch import load_file

from diffdis import preset
from diffdis.cli import main
from diffdis.objective import DiffDisObjective
from diffdis.training import TrainingStopped, train
from diffdis.training.checkpoint import checkpoints


def _overrides(idx_dir):
    return run_overrides(idx_dir, "train.keep_checkpoints=3")


def _command(out, processes, overrides, max_steps):
    if processes == 1:
        args = ["train", "--out", str(out), "--max-steps", str(max_steps), "--no-progress"]
        return [sys.executable, "-m", "diffdis.cli", *args, *[a for o in overrides for a in ("--set", o)]]
    return train_command(out, processes, overrides, max_steps)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (the launcher starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _four_steps(run: Path, idx_dir) -> list[str]:
    """Train 4 steps into `run` with checkpoints at steps 2 and 4; returns the command line that trains it further."""
    command = ["train", "--out", str(run), "--checkpoint-every", "2", "--no-progress"]
    command += [a for o in _overrides(idx_dir) for a in ("--set", o)]
    assert main(command + ["--max-steps", "4"]) == 0
    return command


def _final_state(run, step):
    folder = run / "checkpoints" / f"step_{step:07d}"
    optimizer = torch.load(folder / "optimizer.pt", weights_only=True)
    return load_file(folder / "model.safetensors"), load_file(folder / "ema.safetensors"), optimizer


# Seconds after the first checkpoint appears: at once (during or just after a checkpoint write) and a little later
# (mid-way between checkpoints); fixed, so that a failure reproduces.
KILL_DELAY = {1: 0.2, 2: 0.0}


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_sigkill_after_a_checkpoint_then_resume_equals_an_uninterrupted_run(tmp_path, idx_dir, processes):
    overrides = _overrides(idx_dir) + ["train.checkpoint_every=5"]
    steps = 40
    done = subprocess.run(_command(tmp_path / "a", processes, overrides, steps), env=ENV, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    delay = KILL_DELAY[processes]
    run = tmp_path / "b"
    victim = subprocess.Popen(_command(run, processes, overrides, steps), env=ENV, stderr=subprocess.DEVNULL)
    while not (run / "checkpoints" / "step_0000005").exists():
        assert victim.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.01)
    time.sleep(delay)
    for pid in [victim.pid, *_descendants(victim.pid)]:  # the launcher and every training process
        os.kill(pid, signal.SIGKILL)
    victim.wait()
    interrupted_at = checkpoints(run)[-1].name
    assert interrupted_at != f"step_{steps:07d}", f"not interrupted ({delay} s after the first checkpoint)"

    done = subprocess.run(_command(run, processes, overrides, steps), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {run / 'checkpoints' / interrupted_at}" in done.stdout + done.stderr
    expected, resumed = _final_state(tmp_path / "a", steps), _final_state(run, steps)
    for mine, theirs in zip(resumed[:2], expected[:2]):  # weights and EMA, bit for bit
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    for a, b in zip(resumed[2]["state"].values(), expected[2]["state"].values()):  # AdamW moments
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_damaged_latest_checkpoint_falls_back_with_a_warning(tmp_path, idx_dir, capsys):
    run = tmp_path / "run"
    command = _four_steps(run, idx_dir)
    weights = run / "checkpoints" / "step_0000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # cut off, as by a full disk
    (run / "checkpoints" / "step_0000009.tmp").mkdir()  # a write that a crash interrupted
    with pytest.warns(UserWarning, match="step_0000004 is damaged or incomplete"):
        assert main(command + ["--max-steps", "6"]) == 0
    assert f"resuming from {run / 'checkpoints' / 'step_0000002'}" in capsys.readouterr().out
    assert json.loads((run / "train_summary.json").read_text())["steps"] == 6


@pytest.mark.slow
def test_pickled_code_in_a_checkpoint_is_never_run(tmp_path, idx_dir):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    command = _four_steps(run, idx_dir)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state": Payload()}, run / "checkpoints" / "step_0000004" / "optimizer.pt")
    with pytest.warns(UserWarning, match="step_0000004 is damaged"):
        assert main(command + ["--max-steps", "5"]) == 0  # resumed from step 2 instead
    assert not marker.exists()


def test_non_finite_steps_are_skipped_and_a_run_of_them_stops_training(tmp_path, idx_dir, monkeypatch):
    forward, calls = DiffDisObjective.forward, {"n": 0}

    def poisoned(self, *args, **kwargs):  # steps 3 (once) and from 6 on produce NaN
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3 or calls["n"] >= 6:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(DiffDisObjective, "forward", poisoned)
    config = preset("tiny", _overrides(idx_dir) + ["train.checkpoint_every=2", "train.max_bad_steps=3"])
    with pytest.raises(TrainingStopped, match=r"3 non-finite steps in a row, the last at step 8.*step_0000006"):
        train(config, tmp_path / "run", progress=False)
    saved = checkpoints(tmp_path / "run")
    assert [p.name for p in saved][-1] == "step_0000006"  # steps 6..8 were skipped: nothing changed at step 6
    state = json.loads((saved[-1] / "state.json").read_text())
    assert state["skipped_steps"] == 2  # step 3, and step 6 itself
    for folder in saved:
        for name in ("model.safetensors", "ema.safetensors"):
            assert all(torch.isfinite(v).all() for v in load_file(folder / name).values() if v.is_floating_point())


@pytest.mark.slow
def test_a_readable_checkpoint_that_does_not_fit_is_refused_and_left_untouched(tmp_path, idx_dir, capsys):
    run = tmp_path / "run"
    command = _four_steps(run, idx_dir)
    latest = run / "checkpoints" / "step_0000004"
    optimizer = torch.load(latest / "optimizer.pt", weights_only=True)
    optimizer["param_groups"] = optimizer["param_groups"][:1]  # as after a change of the parameter groups
    torch.save(optimizer, latest / "optimizer.pt")
    before = {p.name: p.read_bytes() for p in sorted(latest.iterdir())}
    capsys.readouterr()
    assert main(command + ["--max-steps", "6"]) != 0
    refused = capsys.readouterr().err
    assert "step_0000004 reads, but its optimizer state does not fit this run" in refused, refused
    assert "move them away" not in refused and "was left as it is" in refused
    assert {p.name: p.read_bytes() for p in sorted(latest.iterdir())} == before  # nothing deleted or rewritten
    assert [p.name for p in checkpoints(run)] == ["step_0000002", "step_0000004"]
