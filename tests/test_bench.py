"""`make bench` writes what it measured: here the encoder-cost benchmark on a small model, its headline ratio and
accuracies checked against the timings and an independent evaluation (the speed itself is the benchmark's)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import encoder_cost, run_all
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
