"""`make bench` writes what it measured: here the encoder-cost benchmark on a small model, its headline ratio and
accuracies checked against the timings and an independent evaluation (the speed itself is the benchmark's); and
`make gpu-check` in the reduced mode it runs without CUDA."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import reset_accelerate_state

from benchmarks import encoder_cost, gpu_check, run_all
from diffdis.data.datasets import FASHION_MNIST_DIR, fixed_subset
from diffdis.data.eval_sets import load_eval_set
from diffdis.evaluation.zero_shot import zero_shot

pytestmark = pytest.mark.slow  # trains or serves: `make test` runs it, `make test-fast` does not

OTHERS = ("zero_shot", "training", "generation", "profile", "memory")


@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).exists(), reason="the benchmark reads the real Fashion-MNIST test set")
def test_the_encoder_cost_benchmark_writes_its_keys(small_pipeline, tmp_path, monkeypatch):
    small_pipeline.save_pretrained(tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    skips = [arg for name in OTHERS for arg in ("--skip", name)]
    monkeypatch.setattr(sys, "argv", ["run_all", "--model", str(tmp_path / "model"), *skips])
    run_all.main()
    results = json.loads((tmp_path / "runs/bench/results.json").read_text())
    cost = results["encoder_cost"]
    by_batch = cost["ms_per_image_by_batch"]
    assert set(by_batch) == {"1", "16", "256"} and set(by_batch["256"]) == {
        "diffdis default",
        "diffdis one read-out",
        "clip tower",
    }
    # the headline ratio is the one the timings give, and each accuracy is that of its setting on those images
    headline = by_batch["256"]
    expected = headline["diffdis one read-out"]["median"] / headline["clip tower"]["median"]
    assert results["zero_shot_vs_clip_tower_ratio"] == pytest.approx(expected)
    test = load_eval_set("fashion-mnist", 16, 1)
    data = fixed_subset(test.data, cost["accuracy_images"])
    for name, options in encoder_cost.SETTINGS.items():
        measured = zero_shot(small_pipeline, data, test.templates, seed=0, **options).accuracy
        assert results["zero_shot_vs_clip_tower_accuracy"][name] == pytest.approx(measured)


def test_the_gpu_check_runs_its_reduced_mode_without_cuda(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("with CUDA the check runs at full size (make gpu-check), not in the reduced mode tested here")
    monkeypatch.setattr(gpu_check, "CACHE", tmp_path)
    reset_accelerate_state()  # its resume trains in bf16, as `make gpu-check` does in a process of its own
    try:
        record = gpu_check.run(tmp_path / "gpu_check.json")
    finally:
        reset_accelerate_state()
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == record
    assert record["reduced"] and "reduced" in record["mode"] and record["provenance"]["code"]
    assert set(record["train"]) == {"32px_batch2_no_ema", "32px_batch4_ema", "64px_batch2_no_ema"}
    for name, figures in record["train"].items():
        weights = figures["parameter_bytes"]
        assert figures["gradient_bytes"] == weights and figures["optimizer_bytes"] >= 2 * weights
        assert figures["ema_bytes"] == (0 if name.endswith("no_ema") else weights)
        assert figures["median_step_seconds"] > 0
        assert figures["command"].startswith("diffdis train --preset sd")  # the step `diffdis train` runs
    assert set(record["inference"]) == {
        "generation_ddim2_images_per_second",
        "generation_ddim4_images_per_second",
        "zero_shot_images_per_second",
    }
    assert record["bf16_vs_fp32"]["query_cosine_min"] > 0.99  # bf16 autocast keeps the query's direction
    assert record["resume"]["max_unet_weight_difference"] == 0.0  # on the CPU the resume is exact
