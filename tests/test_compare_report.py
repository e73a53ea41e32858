"""The comparison report built from hand-written result files: groups, references, validation figures."""

import json

import pytest

from diffdis.experiments.compare_report import write_report

GROUPS = {"models": ("diffdis", "gen", "dis", "clip"), "ablations": ("lam-3",), "settings": ("gamma-3",)}
FID = {("diffdis", 0): 120.0, ("diffdis", 1): 130.0, ("gen", 0): 110.0, ("gen", 1): 114.0, ("lam-3", 0): 140.0}


def _scored(correct: list[int]) -> dict:
    return {"top1": 100.0 * sum(correct) / len(correct), "correct": correct, "positions": list(range(len(correct)))}


def _record(model: str, seed: int) -> dict:
    record = {
        "block": "fashion",
        "model": model,
        "seed": seed,
        "steps": 10,
        "train_seconds": 1.0,
        "wall_seconds": {"train": 1.0, "evaluate": 1.0},
        "model_dir": f"runs/fashion/{model}-seed{seed}/model",  # not written: a clone holds results only
        "curve": [{"step": 10, "val_top1": 70.0 + seed + len(model)}],
    }
    if model != "gen":
        record["classification"] = _scored([1, 1, 0, seed % 2] if model == "diffdis" else [1, 0, 0, 1])
    if model in ("diffdis", "gen", "lam-3"):
        record["generation"] = {
            "fid": {"fid": FID.get((model, seed), 150.0), "kid_mean": 0.05},
            "generation_accuracy": 50.0,
            "per_class": {"shirt": 40.0},
            "guidance_tried": {"1.5": 0.09, "3.0": 0.07 + seed / 100, "5.0": 0.08},
        }
        record["diffusion_classifier"] = {"8": _scored([1, 0, 1, 0] if model == "gen" else [0, 0, 1, 1])}
    return record


@pytest.fixture
def report(tmp_path):
    for model in ("diffdis", "gen", "lam-3", "gamma-3"):
        for seed in (0, 1):
            run = tmp_path / "runs" / "fashion" / f"{model}-seed{seed}"
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps(_record(model, seed)))
    settings = {"holdout_triples": {}, "groups": GROUPS, "command": "diffdis compare --report-only"}
    return write_report(tmp_path, settings), tmp_path


def test_rows_are_grouped_and_compared_with_diffdis_and_its_same_classifier(report):
    report, _ = report
    fashion = report["blocks"]["fashion"]
    groups = fashion["groups"]
    models = [r for r, g in groups.items() if g == "models"]
    assert models == ["diffdis", "gen", "diffdis + DC-8", "gen + DC-8"]  # query rows first, as GROUPS lists them
    assert groups["lam-3"] == "ablations" and groups["gamma-3"] == "settings" and groups["lam-3 + DC-8"] == "other"
    paired, same = fashion["diffdis_minus_row"], fashion["same_classifier_on_diffdis_minus_row"]
    # another model's Diffusion Classifier against DiffDis's query, and against the same classifier on DiffDis:
    # [0,0,1,1] - [1,0,1,0] per seed
    dc = same["gen + DC-8"]["seen-class top-1"]
    assert dc["reference"] == "diffdis + DC-8" and dc["mean_difference"] == pytest.approx(0.0)
    assert paired["gen + DC-8"]["seen-class top-1"]["reference"] == "diffdis"
    assert set(same) == {"gen + DC-8", "lam-3 + DC-8"}
    # FID by seed: diffdis 120, 130; gen 110, 114 -> differences 10 and 16
    fid = paired["gen"]["FID"]
    assert fid["reference"] == "diffdis" and fid["mean_difference"] == pytest.approx(13.0)
    assert fid["method"] == "seed-level paired t-interval, df = 1" and fid["low"] < 13.0 < fid["high"]


def test_the_validation_kid_is_the_chosen_guidance_and_settings_report_what_they_measured(report):
    report, out = report
    rows = report["blocks"]["fashion"]["rows"]
    assert rows["diffdis"]["validation KID"]["per_seed"] == pytest.approx([0.07, 0.08])  # the lowest tried per seed
    assert "FID" not in rows["gamma-3"] and "validation top-1" in rows["gamma-3"]
    text = (out / "compare.md").read_text()
    settings_part = text.split("### Settings sweep")[1]
    assert "| gamma-3 |" in settings_part and "FID" not in settings_part.split("\n\n")[1]  # its table's header
    assert "lam-3 + DC-8" not in text and "see compare.json" in text
    assert (out / "curves.png").exists() and (out / "compare.png").exists()
