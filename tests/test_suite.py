"""The evaluation suite and its named sets."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from diffdis import preset
from diffdis.cli import main
from diffdis.data.datasets import fixed_subset
from diffdis.data.eval_sets import load_eval_set
from diffdis.evaluation.suite import evaluate
from diffdis.evaluation.zero_shot import zero_shot


def test_named_sets_load_in_the_model_format(tmp_path):
    for name in ("digits", "shapes-count", "shapes-heldout-shape"):
        s = load_eval_set(name, 16, 1)
        assert s.data.images.shape[1:] == (1, 16, 16) and s.templates
        assert s.data.labels.max() < len(s.data.class_names)
    digits = load_eval_set("digits", 16, 3).data
    assert len(digits) == 1797 and digits.images.shape[1] == 3
    for cls in ("ankle_boot", "bag"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (30, 20), "red").save(tmp_path / cls / "x.jpg")
    folder = load_eval_set(f"classes:{tmp_path}", 16, 1).data
    assert folder.class_names == ("ankle boot", "bag") and folder.labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="unknown evaluation set"):
        load_eval_set("cifar", 16, 1)


def test_suite_reports_every_set_and_skips_missing_ones_with_the_reason(small_pipeline, tmp_path):
    result = evaluate(
        small_pipeline, ("digits", "shapes-shape", "fashion-mnist"), data_dir=str(tmp_path), max_images=24
    )
    z = result["zero_shot"]
    digits = load_eval_set("digits", 16, 1)
    direct = zero_shot(small_pipeline, fixed_subset(digits.data, 24), digits.templates)
    assert z["digits"]["images"] == 24 and z["digits"]["top1"] == direct.accuracy and "top5" in z["digits"]
    assert "top5" not in z["shapes-shape"]  # four classes
    assert "not found" in z["fashion-mnist"]["skipped"]
    # the small model trained on fashion-mnist: digits and shapes are transfer sets, averaged only with each other
    assert z["digits"]["relation"] == z["shapes-shape"]["relation"] == "not trained on"
    means = result["mean_top1_by_relation"]
    assert list(means) == ["not trained on"] and means["not trained on"]["sets"] == ["digits", "shapes-shape"]
    assert means["not trained on"]["mean_top1"] == pytest.approx((z["digits"]["top1"] + z["shapes-shape"]["top1"]) / 2)
    assert set(result["retrieval"]) >= {"image_to_text_R@1", "text_to_image_R@10", "distinct_captions"}
    assert result["query"]["start"] == "noise" and result["query"]["sampler"] == "ddim"


def test_each_set_is_labelled_by_what_the_model_trained_on():
    from diffdis.evaluation.suite import relation

    fashion, shapes = preset("tiny"), preset("tiny", ["train.data=shapes", "model.image_channels=3"])
    assert relation("fashion-mnist", fashion) == "trained" and relation("digits", fashion) == "not trained on"
    assert relation("shapes-colour", fashion) == "not trained on" and relation("shapes-colour", shapes) == "trained"
    assert relation("shapes-heldout-shape", shapes) == "held-out compositions"


def test_evaluate_command(small_pipeline, tmp_path, capsys):
    small_pipeline.save_pretrained(tmp_path / "model")
    out = tmp_path / "e.json"
    assert (
        main(f"evaluate --model {tmp_path / 'model'} --suite digits,shapes-place --num-images 16 --json {out}".split())
        == 0
    )
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "trained on: fashion-mnist" in printed and "mean top-1, not trained on" in printed
    tops = [result["zero_shot"][name]["top1"] for name in ("digits", "shapes-place")]
    assert set(result["zero_shot"]) == {"digits", "shapes-place"}
    assert result["mean_top1_by_relation"]["not trained on"]["mean_top1"] == pytest.approx(sum(tops) / 2)
