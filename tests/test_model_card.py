"""The model card: written by save_pretrained from what the folder holds, with the training summary and measured
figures when present, and without figures of weights that were replaced."""

from __future__ import annotations

import json

import torch

from diffdis import DiffDisPipeline
from diffdis.config import apply_overrides
from diffdis.model_card import CARD_NAME, MEASURED_NAME, write_model_card


def test_the_model_card_says_what_the_folder_holds_and_drops_figures_of_replaced_weights(small_config, tmp_path):
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(small_config)
    folder = tmp_path / "model"
    pipe.save_pretrained(folder)
    card = (folder / CARD_NAME).read_text()
    assert "library_name: diffdis" in card and "A `diffdis` model" in card and "16x16" in card
    assert "No training summary" in card and "No figures measured" in card

    summary = {
        "steps": 10,
        "train_seconds": 60.0,
        "processes": 2,
        "validation": [
            {"step": 5, "val_top1": 50.0, "val_images": 8, "val_steps": 2},
            {"step": 10},  # a record with no accuracy
        ],
    }
    (folder / "train_summary.json").write_text(json.dumps(summary))
    write_model_card(folder, {"source": "a test", "figures": [{"name": "top-1", "value": "50%", "how": "8 images"}]})
    card = (folder / CARD_NAME).read_text()
    assert "| steps | 10 of train.max_steps=" in card and "1.0 min on 2 process(es)" in card
    assert "top-1 50.00% at step 5" in card
    assert "| top-1 | 50% (8 images) |" in card

    pipe.save_pretrained(folder)  # new weights: the old figures no longer describe them
    assert not (folder / MEASURED_NAME).exists()
    assert "No figures measured" in (folder / CARD_NAME).read_text()


def test_a_repa_trained_model_card_names_the_encoder_and_its_licence(small_config, tmp_path):
    """Weights shaped by an encoder's features in training carry that encoder's licence on their card."""
    config = apply_overrides(small_config, ["train.align_weight=0.5", "train.align_layer=down.1"])
    DiffDisPipeline.from_config(config).save_pretrained(tmp_path / "model")
    card = (tmp_path / "model" / CARD_NAME).read_text()
    repa = "| REPA (training only) | down.1 aligned to the frozen efficientnet-lite0 image encoder's features"
    assert f"{repa}, weight 0.5" in card
    assert "Apache-2.0 (EfficientNet-Lite0 ImageNet weights" in card

    DiffDisPipeline.from_config(small_config).save_pretrained(tmp_path / "plain")
    assert "REPA" not in (tmp_path / "plain" / CARD_NAME).read_text()
