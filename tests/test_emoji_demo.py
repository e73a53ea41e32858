"""The emoji demo end to end in a reduced mode (a small model, a few steps, few samples): every section of its
result file, the model folder's record of what it was trained on and held out, and the licences in its card."""

from __future__ import annotations

import json

import pytest
from helpers import SMALL

from diffdis.experiments import emoji_demo

pytestmark = pytest.mark.slow  # trains or serves: `make test` runs it, `make test-fast` does not


def test_the_emoji_demo_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(emoji_demo, "GENERATION", {"num_inference_steps": 2, "guidance_scale": 3.0, "seed": 0})
    monkeypatch.setattr(emoji_demo, "GRID_CONCEPTS", 2)
    monkeypatch.setattr(emoji_demo, "GRID_SAMPLES", 2)
    monkeypatch.setattr(emoji_demo, "JUDGED_CONCEPTS", 3)
    monkeypatch.setattr(emoji_demo, "JUDGE_EPOCHS", 1)
    monkeypatch.setattr(emoji_demo, "LIT_INPUT_SIZE", 32)  # the lit baseline's encoder at 32 px: seconds
    overrides = [*SMALL, "train.max_steps=3", "train.batch_size=16", "train.max_minutes=0", "train.warmup_steps=1"]
    summary = emoji_demo.run_emoji_demo(tmp_path, overrides, progress=False)

    assert "zero-shot, unseen concepts" in capsys.readouterr().out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["model"]["steps_trained"] == 3 and saved["data"]["concepts"]["test"] == 143
    test = saved["discrimination"]["test"]
    assert test["unseen"]["classes"] == 143 and abs(test["unseen"]["chance_top1"] - 100 / 143) < 1e-9
    assert test["unseen_style"]["classes"] == 1212 and "image_to_text_R@10" in test["unseen_style"]["retrieval"]
    assert saved["discrimination"]["validation"]["unseen"]["classes"] == 71
    assert "unseen_style" not in saved["discrimination"]["validation"]  # the test-only figure is read once
    assert 0 <= summary["generation"]["seen"]["judged_correct"] <= 100
    assert saved["generation"]["judge"]["test_images"] > 1000
    assert "seen_self_checked" not in saved["generation"]  # eight times the sampling: the release's evaluation only
    assert (tmp_path / "samples.png").exists()
    lit = saved["lit"]  # the locked-image baseline, on the same sets, its ImageNet-class concepts apart
    assert lit["test"]["unseen"]["classes"] == 143 and lit["val"]["unseen"]["classes"] == 71
    assert lit["test"]["unseen_encoder_seen"]["concepts"] + lit["test"]["unseen_encoder_unseen"]["concepts"] == 143
    assert lit["encoder_licence"].startswith("Apache-2.0")

    model = tmp_path / "model"
    vocabulary = json.loads((model / "vocabulary.json").read_text())
    assert vocabulary["data"] == "emoji" and len(vocabulary["held_out_test"]) == 143
    assert not set(vocabulary["classes"]) & set(vocabulary["held_out_test"])
    card = (model / "README.md").read_text()
    assert "CC BY 4.0" in card and "CC BY-SA 4.0" in card and "zero-shot top-1" in card
