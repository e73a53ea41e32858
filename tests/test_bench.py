"""`make bench` writes its keys: here the encoder-cost benchmark on a small model (its figures are not the point)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import run_all
from diffdis.data.datasets import FASHION_MNIST_DIR

OTHERS = ("zero_shot", "training", "generation", "profile", "memory")


@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).exists(), reason="the benchmark reads the real Fashion-MNIST test set")
def test_the_encoder_cost_benchmark_writes_its_keys(small_pipeline, tmp_path, monkeypatch):
    small_pipeline.save_pretrained(tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    skips = [arg for name in OTHERS for arg in ("--skip", name)]
    monkeypatch.setattr(sys, "argv", ["run_all", "--model", str(tmp_path / "model"), *skips])
    run_all.main()
    results = json.loads((tmp_path / "runs/bench/results.json").read_text())
    assert results["zero_shot_vs_clip_tower_ratio"] > 0
    assert set(results["zero_shot_vs_clip_tower_accuracy"]) == {"default", "one read-out"}
    by_batch = results["encoder_cost"]["ms_per_image_by_batch"]
    assert set(by_batch) == {"1", "16", "256"} and set(by_batch["256"]) == {
        "diffdis default",
        "diffdis one read-out",
        "clip tower",
    }
