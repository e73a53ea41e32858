"""End to end through the command line: train (and resume), generate, classify, retrieve."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from helpers import ENV, SMALL
from PIL import Image

from diffdis import DiffDisPipeline
from diffdis.cli import main
from diffdis.data.datasets import load_fashion_mnist
from diffdis.evaluation.zero_shot import zero_shot


@pytest.mark.slow
def test_train_resume_generate_classify_retrieve(tmp_path, idx_dir, capsys):
    run = tmp_path / "run"
    overrides = SMALL + [
        f"train.data_dir={idx_dir}",
        "train.val_size=32",
        "train.batch_size=16",
        "train.validate_every=0",
        "train.val_images=16",
    ]
    train = f"train --preset tiny --out {run} --checkpoint-every 2 --no-progress".split()
    train += [arg for item in overrides for arg in ("--set", item)]
    assert main(train + ["--max-steps", "3"]) == 0
    state = json.loads((run / "checkpoints" / "step_0000003" / "state.json").read_text())
    assert state["step"] == 3
    assert main(train + ["--max-steps", "5"]) == 0  # resumes at step 3
    assert "resuming from" in capsys.readouterr().out
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 5 and summary["validation"][-1]["step"] == 5
    memory = summary["memory"]  # measured on the tensors: fp32 weights and gradients, two AdamW moments, the EMA
    weights = 4 * memory["trained_parameters"]
    assert memory["parameter_bytes"] == memory["gradient_bytes"] == memory["ema_bytes"] == weights
    assert 2 * weights <= memory["optimizer_bytes"] <= 2 * weights + 4 * 1000  # + a step counter per tensor
    assert memory["steps_timed"] == 2 and memory["median_step_seconds"] > 0 and memory["peak_resident_mb"] > 100
    assert 100 < memory["steps_peak_resident_mb"] <= memory["peak_resident_mb"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000004", "step_0000005"]
    assert (run / "config.json").exists() and list((run / "samples").glob("*.png"))
    model, out = run / "model", tmp_path / "out.json"

    assert (
        main(
            [
                "generate",
                "--model",
                str(model),
                "--prompt",
                "a dress",
                "--num-images",
                "3",
                "--steps",
                "3",
                "--out",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "g.png").size[0] >= 3 * 16

    assert (
        main(f"classify --model {model} --dataset fashion-mnist --data-dir {idx_dir} --steps 2 --json {out}".split())
        == 0
    )
    result = json.loads(out.read_text())
    pipe = DiffDisPipeline.from_pretrained(model)
    data = load_fashion_mnist("test", 16, 1, idx_dir)
    assert result["images"] == 40 and result["top1"] == zero_shot(pipe, data, num_inference_steps=2).accuracy

    folder = tmp_path / "imgs"
    for name in ("dress", "bag"):
        (folder / name).mkdir(parents=True)
        Image.new("L", (28, 28), 90).save(folder / name / "a.png")
    assert main(f"classify --model {model} --images {folder} --labels dress,bag --json {out}".split()) == 0
    result = json.loads(out.read_text())
    assert len(result["predictions"]) == 2 and result["images"] == 2

    command = f"retrieve --model {model} --dataset fashion-mnist --data-dir {idx_dir} --num-images 20 --json {out}"
    assert main(command.split()) == 0
    assert json.loads(out.read_text())["pairs"] == 20


def test_errors_name_the_problem(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--set", "model.gama=1"]) == 2
    assert "valid model keys" in capsys.readouterr().err
    assert main(["classify", "--model", str(tmp_path), "--dataset", "fashion-mnist"]) == 2
    assert "not a saved DiffDis pipeline" in capsys.readouterr().err


def _help(*command: str) -> str:
    out = subprocess.run([sys.executable, "-m", "diffdis.cli", *command, "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_every_option_is_documented():
    from diffdis.cli import COMMANDS

    commands = {command.name for command in COMMANDS}
    assert {"train", "generate", "classify", "retrieve", "evaluate", "compare", "self-check", "demo", "app"} <= commands
    listed = _help().split("{", 1)[1].split("}", 1)[0]
    assert set(listed.split(",")) == commands
    for name in sorted(commands):
        lines = [line for line in _help(name).split("options:", 1)[1].splitlines() if line.strip()]
        # argparse writes an option at indent 2 and its help after it on the same line or, for a long option,
        # indented on the next; an option without help has neither
        for line, following in zip(lines, lines[1:] + ["  -"]):
            if line.startswith("  -") and "  " not in line.strip():
                assert following.startswith("    ") and not following.strip().startswith("-"), (
                    f"diffdis {name}: {line.strip()} has no help text"
                )


@pytest.mark.slow
def test_compare_end_to_end(tmp_path, idx_dir):
    """A quick study: 2 seeds, the seen-class block and one held-out triple, every key of the report."""
    from diffdis.experiments.compare import run_compare
    from diffdis.experiments.compare_eval import Budget

    out = tmp_path / "compare"
    extra = [*SMALL, "train.val_size=40", "train.batch_size=16", f"train.data_dir={idx_dir}"]
    budget = Budget(
        eval_images=30,
        val_images=20,
        fid_images=10,
        val_fid_images=10,
        dc_images=20,
        curve_images=20,
        curve_samples=1,
        cost_rounds=1,
        cost_images=16,
    )

    def study():
        kwargs = dict(steps=2, seeds=(0, 1), blocks=("fashion", "unseen-A"), models=("diffdis", "clip"))
        run_compare(out, budget=budget, overrides=extra, progress=False, **kwargs)

    study()
    report = json.loads((out / "compare.json").read_text())
    fashion, unseen = report["blocks"]["fashion"], report["blocks"]["unseen-A"]
    assert set(fashion["rows"]) == {"diffdis", "clip", "diffdis + DC-8", "diffdis + DC-32"}
    assert fashion["rows"]["diffdis"]["seen-class top-1"]["n"] == 2  # two seeds: mean and spread
    assert {"FID", "KID", "judged accuracy", "seen-class top-1"} <= set(fashion["rows"]["diffdis"])
    assert "FID" not in fashion["rows"]["clip"]
    paired = fashion["diffdis_minus_row"]["clip"]["seen-class top-1"]
    assert paired["method"] == "seed-level paired t-interval, df = 1" and paired["low"] <= paired["high"]
    dc8 = fashion["diffdis_minus_row"]["diffdis + DC-8"]["seen-class top-1"]
    dc32 = fashion["diffdis_minus_row"]["diffdis + DC-32"]["seen-class top-1"]
    assert (dc8["images"], dc32["images"], dc32["seeds"]) == (20, 5, 2)  # paired on the test images both scored
    assert set(unseen["rows"]) == {"diffdis", "clip"}
    assert {"unseen top-1 (among unseen)", "generalized seen", "generalized unseen"} <= set(unseen["rows"]["clip"])
    assert report["settings"]["holdout_triples"]["unseen-A"] and set(report["costs"]) >= {"diffdis query", "clip query"}
    result = json.loads((out / "runs/unseen-A/diffdis-seed0/result.json").read_text())
    assert result["classification"]["unseen_chance"] == 100 / 3 and result["query"]["chosen_on"]
    assert [p["step"] for p in result["curve"]] == [1, 2] and "curve_unseen_top1" in result["curve"][0]
    assert "| diffdis |" in (out / "compare.md").read_text()
    assert (out / "compare.png").exists() and (out / "curves.png").exists()
    # finished runs are skipped when the study runs again
    stamp = (out / "runs/fashion/clip-seed1/result.json").stat().st_mtime
    study()
    assert (out / "runs/fashion/clip-seed1/result.json").stat().st_mtime == stamp
    (out / "compare.md").unlink()
    assert main(["compare", "--out", str(out), "--report-only"]) == 0  # trains nothing, rewrites the report
    assert "| diffdis |" in (out / "compare.md").read_text()
    for model_dir in (out / "runs").glob("*/*/model"):  # a clone holds the result files without the models
        shutil.rmtree(model_dir)
    assert main(["compare", "--out", str(out), "--report-only"]) == 0
    costs = json.loads((out / "compare.json").read_text())["costs"]
    assert "diffdis query" in costs and costs["how"].endswith("are not in this folder)")


@pytest.mark.slow
def test_train_on_shapes_from_the_command_line(tmp_path):
    run = tmp_path / "shapes"
    sets = [
        a
        for s in SMALL
        + [
            "train.shapes_size=64",
            "train.val_size=16",
            "train.batch_size=16",
            "train.validate_every=0",
            "train.val_images=16",
        ]
        for a in ("--set", s)
    ]
    assert main(f"train --out {run} --data shapes --max-steps 2 --no-progress".split() + sets) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["data"] == "shapes" and config["model"]["image_channels"] == 3


@pytest.mark.slow
def test_demo_end_to_end_on_small_data(tmp_path, idx_dir):
    from diffdis.experiments.demo import run_demo

    overrides = SMALL + [f"train.data_dir={idx_dir}", "train.val_size=32", "train.batch_size=16", "train.val_images=16"]
    summary = run_demo(tmp_path / "demo", overrides + ["train.max_steps=2"], progress=False)
    saved = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert saved["zero_shot"]["images"] == 40 and saved["model"]["training"]["steps"] == 2
    names = saved["class_names"]
    assert names["official"]["names"][1] == "Trouser" and len(names["recall_official"]) == 10
    assert names["difference_top1"] == names["official"]["top1"] - names["ours"]["top1"]
    assert names["ours"]["top1"] == saved["zero_shot"]["top1"]
    assert saved["generation"]["judged"]["images"] == 200 and "test_accuracy" in saved["generation"]["judged"]["judge"]
    assert (
        saved["retrieval"]["class_level"]["text_to_image_R@1"]
        == summary["retrieval"]["class_level"]["text_to_image_R@1"]
    )
    assert (tmp_path / "demo" / "samples.png").exists() and (tmp_path / "demo" / "confusion.png").exists()


@pytest.mark.slow
def test_compare_budget_mode_fits_each_model_its_own_steps(tmp_path, idx_dir):
    """--budget-minutes: a probe measures each model's step time, so that its schedule ends at its last step."""
    from diffdis.experiments.compare_blocks import StudyRun, budget_steps

    extra = [*SMALL, "train.val_size=40", "train.batch_size=16", f"train.data_dir={idx_dir}"]
    run = StudyRun("fashion", "clip", 0)
    steps = budget_steps(run, 0.5, tmp_path, extra, probe=3)
    logged = [json.loads(line) for line in (tmp_path / "probe/fashion/clip/train_log.jsonl").read_text().splitlines()]
    assert logged[-1]["step"] == 3 and steps == int(30 / (16 / logged[-1]["images_per_second"]))
    assert budget_steps(run, 1.0, tmp_path, extra, probe=3) in (2 * steps, 2 * steps + 1)  # the probe is reused


def test_generating_and_classifying_import_nothing_of_the_training_stack(tmp_path, small_pipeline):
    """`diffdis generate` and `classify` run without the training package (FSDP2 and the loop need a recent
    torch; a user who only generates should not depend on them)."""
    folder = tmp_path / "model"
    small_pipeline.save_pretrained(folder)
    images = tmp_path / "images"
    code = f"""
import json, sys
from diffdis.cli import main
assert main(["generate", "--model", {str(folder)!r}, "--prompt", "a bag.", "--num-images", "2", "--steps", "2",
             "--out", {str(images)!r}]) == 0
assert main(["classify", "--model", {str(folder)!r}, "--images", {str(images)!r}, "--labels", "bag,coat"]) == 0
print(json.dumps(sorted(m for m in sys.modules if m.startswith("diffdis.training."))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == ["diffdis.training.errors"], loaded  # the command line's error classes, nothing more
