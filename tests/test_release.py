"""The released emoji model's path end to end in a reduced mode (a small model, a few steps, few samples): the
validation curves, the evaluation of record, the fp16 export, listing and loading by name; and the model that
ships with the package, loaded by name as a user would."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import SMALL
from safetensors import safe_open

import diffdis
from diffdis import DiffDisPipeline, pretrained
from diffdis.config import apply_overrides
from diffdis.experiments import emoji_demo, release
from diffdis.pretrained import resolve_model

SHIPPED = "emoji-16"


@pytest.mark.slow  # trains and evaluates
def test_the_release_trains_with_curves_evaluates_once_and_exports_a_listed_model(tmp_path, monkeypatch):
    monkeypatch.setattr(emoji_demo, "GENERATION", {"num_inference_steps": 2, "guidance_scale": 3.0, "seed": 0})
    monkeypatch.setattr(
        emoji_demo, "SELF_CHECKED", {"num_inference_steps": 2, "guidance_scale": 5.0, "seed": 0, "candidates": 2}
    )
    for module in (emoji_demo, release):
        monkeypatch.setattr(module, "JUDGE_EPOCHS", 1)
    monkeypatch.setattr(emoji_demo, "GRID_CONCEPTS", 2)
    monkeypatch.setattr(emoji_demo, "GRID_SAMPLES", 2)
    monkeypatch.setattr(emoji_demo, "JUDGED_CONCEPTS", 3)
    monkeypatch.setattr(release, "CURVE_GENERATION", {"num_inference_steps": 2, "guidance_scale": 3.0, "seed": 0})
    monkeypatch.setattr(release, "CURVE_CONCEPTS", 2)
    monkeypatch.setattr(pretrained, "RELEASED_DIR", tmp_path / "released")
    monkeypatch.setattr(release, "RELEASED_DIR", tmp_path / "released")
    overrides = [*SMALL, "train.max_steps=4", "train.batch_size=16", "train.warmup_steps=1", "train.validate_every=2"]
    run = tmp_path / "run"
    dest = release.run_release(run, overrides, progress=False)

    curve = json.loads((run / "train_summary.json").read_text())["validation"]
    assert [point["step"] for point in curve] == [2, 4]
    assert {"unseen_top1", "unseen_far_top1", "unseen_near_top5", "judged_seen", "judged_val"} <= set(curve[-1])
    results = json.loads((run / "results.json").read_text())
    test = results["discrimination"]["test"]
    near, far = test["unseen_near"], test["unseen_far"]
    assert near["concepts"] + far["concepts"] == 143 and near["images"] + far["images"] == test["unseen"]["images"]
    assert results["curves"] == curve and results["command"].startswith("diffdis release --name emoji-16 --out")
    checked = results["generation"]["seen_self_checked"]  # the same prompts, the best of 2 by its own scores
    assert checked["candidates"] == 2 and checked["images"] == results["generation"]["seen"]["images"] == 6

    listed = diffdis.list_pretrained()
    assert [m["name"] for m in listed] == [release.RELEASE] and dest == tmp_path / "released" / release.RELEASE
    record = listed[0]
    assert record["figures"]["unseen_test_top1"] == round(test["unseen"]["top1"], 1)
    assert "CC BY 4.0" in record["licences"] and "CC BY-SA 4.0" in (dest / "README.md").read_text()
    assert record["figures"]["generation_judged_seen_self_checked"] == round(checked["judged_correct"], 1)
    assert "self-checked" in (dest / "README.md").read_text()
    with safe_open(str(dest / "text_stream.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype.itemsize == 2 for k in f.keys())  # shipped in half precision
    pipe = DiffDisPipeline.from_pretrained(release.RELEASE)  # by name
    assert next(pipe.model.parameters()).dtype.itemsize == 4  # computed in fp32 as every pipeline is
    assert pipe.vocabulary["data"] == "emoji" and len(pipe.generate("an emoji of cat face.", 2)) == 1
    stored = pipe.familiarity()  # read from the folder: the export stored it
    assert (dest / "familiarity.safetensors").is_file()
    computed = pipe.to("cpu").familiarity()  # moving the pipeline drops it: computed again from the vocabulary
    assert stored.captions == computed.captions and abs(stored.threshold - computed.threshold) < 1e-5
    assert torch.allclose(stored.known, computed.known, atol=1e-5)

    written = (run / "results.json").stat().st_mtime_ns
    release.run_release(run, overrides, progress=False)  # finished: neither trains nor reads the test set again
    assert (run / "results.json").stat().st_mtime_ns == written
    release.run_release(run, overrides, progress=False, evaluate=True)  # asked to: evaluated again, and says so
    again = json.loads((run / "results.json").read_text())
    assert "--stage evaluate" in again["command"] and again["discrimination"] == results["discrimination"]


def test_the_licences_of_a_repa_trained_release_name_the_encoder(small_config):
    plain = release.release_licences(small_config)
    assert "CC BY 4.0" in plain and "REPA" not in plain
    aligned = release.release_licences(apply_overrides(small_config, ["train.align_weight=0.5"]))
    assert aligned.startswith(plain) and "REPA: mid aligned to the frozen efficientnet-lite0" in aligned
    assert "Apache-2.0 (EfficientNet-Lite0 ImageNet weights" in aligned


def test_the_card_of_a_model_aligned_to_an_imagenet_encoder_gives_the_classes_it_saw_apart():
    summary = json.loads((pretrained.RELEASED_DIR / SHIPPED / "results.json").read_text())  # trained with REPA
    test = summary["discrimination"]["test"]
    rows = {f["name"]: f for f in emoji_demo.measured_figures(summary)["figures"]}
    named = rows["zero-shot top-1 / top-5, unseen test concepts named by an ImageNet-1k class"]
    assert named["value"] == f"{test['unseen_encoder_seen']['top1']:.1f}% / {test['unseen_encoder_seen']['top5']:.1f}%"
    assert named["how"].startswith(f"{test['unseen_encoder_seen']['concepts']} concepts")
    assert "zero-shot top-1 / top-5, unseen test concepts named by no ImageNet-1k class" in rows
    for key in ("unseen_encoder_seen", "unseen_encoder_unseen"):  # a model with no pretrained encoder
        del test[key]
    assert not any("ImageNet" in f["name"] for f in emoji_demo.measured_figures(summary)["figures"])


def test_an_unknown_model_name_is_refused_with_the_released_names():
    with pytest.raises(FileNotFoundError, match=SHIPPED):
        resolve_model("emoji-17")
    with pytest.raises(FileNotFoundError, match="list_pretrained"):
        DiffDisPipeline.from_pretrained("no-such-model")


def test_each_released_model_has_a_recipe_and_an_unknown_one_is_refused_by_name(tmp_path):
    from diffdis.experiments.emoji_settings import RECIPES

    assert release.RELEASE in RECIPES and all("train.validate_every=1000" in r for r in RECIPES.values())
    with pytest.raises(ValueError, match="recipes are emoji-16"):
        release.train_release(tmp_path, name="emoji-17")
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_the_shipped_model_is_listed_and_loads_by_name_from_the_package():
    listed = {m["name"]: m for m in diffdis.list_pretrained()}
    assert SHIPPED in listed, "the released emoji model ships inside the package (src/diffdis/released/)"
    model = listed[SHIPPED]
    assert model["resolution"] == 16 and model["draws_well"] and model["figures"]["unseen_test_top1"] > 100 / 143
    pipe = DiffDisPipeline.from_pretrained(SHIPPED)
    assert pipe.vocabulary["data"] == "emoji"
    images = pipe.generate(f"an emoji of {model['draws_well'][0]}.", num_inference_steps=5, seed=0)
    assert images[0].size == (16, 16)
    labels = ["cat face", "red apple", "rocket"]
    assert pipe.predict(images, labels).probabilities.shape == (1, 3)


def test_a_curve_point_scores_what_the_variant_can_do(monkeypatch):
    """gen is judged on its samples without a zero-shot figure, dis/clip are scored without training the judge."""
    from types import SimpleNamespace

    calls = []
    groups = {g: {"top1": 1.0, "top5": 2.0} for g in ("unseen", "unseen_near", "unseen_far", "seen_heldout_drawings")}
    monkeypatch.setattr(release, "emoji_zero_shot", lambda *a, **k: calls.append("zero-shot") or groups)
    judge = ("a judge", {"test_accuracy": 40.0})
    monkeypatch.setattr(release, "emoji_judge", lambda *a, **k: calls.append("judge") or judge)
    monkeypatch.setattr(release, "emoji_generation", lambda *a, **k: (None, {"judged_correct": 3.0}))
    emoji = SimpleNamespace(concepts=lambda split: list(range(100)))
    for generates, discriminates in ((True, False), (False, True), (True, True)):
        calls.clear()
        point = release.EmojiCurve(emoji)(SimpleNamespace(can_generate=generates, can_discriminate=discriminates))
        assert ("unseen_far_top1" in point) == discriminates == ("zero-shot" in calls)
        assert ("judged_seen" in point) == ("judged_val" in point) == generates == ("judge" in calls)
        assert "wall_time" in point
