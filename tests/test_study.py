"""The study's second edition: its statistics against hand-computed cases, the report's marks, provenance of
every training segment, starting from a saved pipeline's UNet, L_ITA by t_e at a large query scale, and a quick
pretrain -> fine-tune study."""

import json

import numpy as np
import pytest
import torch
from helpers import run_overrides

from diffdis import DiffDisPipeline, preset
from diffdis.evaluation.significance import holm, image_standard_error, paired_interval
from diffdis.training import train


def test_paired_interval_p_value_and_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 df. For 2 df the t tail has the closed
    # form sf(t) = (1 - t / sqrt(t^2 + 2)) / 2, so p = 1 - 3.4641 / sqrt(14) = 0.074180.
    r = paired_interval([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    assert r["p_value"] == pytest.approx(1 - 3.4641016 / np.sqrt(14), abs=1e-6)
    assert r["low"] == pytest.approx(2 - 2.484138, abs=1e-5) and r["significant"] is False
    assert r["per_seed"] == [1.0, 2.0, 3.0] and r["method"] == "seed-level paired t-interval, df = 2"
    # the bootstrap this replaced would have called a -13.4, -0.5, -4.7 gap significant; the t-interval does not
    gap = paired_interval([0.0, 0.0, 0.0], [13.4, 0.5, 4.7])
    assert gap["significant"] is False and 0.2 < gap["p_value"] < 0.3
    assert paired_interval([3.0, 3.0], [1.0, 1.0])["p_value"] == 0.0  # every seed agrees: no spread to test against


def test_holm_by_hand():
    # sorted p: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06 (monotone)
    adjusted, rejected = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert rejected == [True, False, False, True]
    assert holm([0.5, 0.9])[0] == pytest.approx([1.0, 1.0])  # capped at 1


def test_image_standard_error_by_hand():
    a = np.array([[1, 1, 0, 0]])  # differences 1, 1, 0, 0 (x100): sd 57.735, / sqrt 4 = 28.868
    b = np.zeros((1, 4))
    assert image_standard_error(a, b) == pytest.approx(100 * np.std([1, 1, 0, 0], ddof=1) / 2)


def _result(block: str, model: str, seed: int, top1: float) -> dict:
    correct = [1] * round(top1) + [0] * (100 - round(top1))
    return {
        "block": block,
        "model": model,
        "seed": seed,
        "steps": 10,
        "train_seconds": 1.0,
        "wall_seconds": {"train": 1.0, "evaluate": 1.0},
        "model_dir": "unused",
        "curve": [],
        "classification": {"top1": top1, "correct": correct, "positions": list(range(100))},
    }


def test_the_report_marks_intervals_and_the_holm_correction(tmp_path):
    """clip is ahead of DiffDis by 10.0, 10.2, 9.8 points over three seeds: the interval excludes 0 and the
    difference survives Holm over the family; dis is ahead by 1, 9, 2: an interval that holds 0, no mark."""
    from diffdis.experiments.compare_report import write_report

    tops = {"diffdis": [60, 60, 60], "clip": [70, 70.2, 69.8], "dis": [61, 69, 62]}
    for model, values in tops.items():
        for seed, top1 in enumerate(values):
            folder = tmp_path / "runs" / "fashion" / f"{model}-seed{seed}"
            folder.mkdir(parents=True)
            (folder / "result.json").write_text(json.dumps(_result("fashion", model, seed, top1)))
    groups = {"models": ("diffdis", "gen", "dis", "clip")}
    report = write_report(tmp_path, {"holdout_triples": {}, "groups": groups, "command": "diffdis compare"})
    paired = report["blocks"]["fashion"]["diffdis_minus_row"]
    clip, dis = paired["clip"]["seen-class top-1"], paired["dis"]["seen-class top-1"]
    assert clip["mean_difference"] == pytest.approx(-10.0) and clip["holm_significant"] is True
    assert clip["images"] == 100 and clip["image_standard_error"] > 0
    assert dis["significant"] is False and dis["holm_significant"] is False
    family = report["families"]["first edition"]
    assert family["tests"] == 2 and family["surviving"] == ["fashion: clip"]
    text = (tmp_path / "compare.md").read_text()
    assert "clip: seen-class top-1 -10.00" in text and "]*†" in text
    assert "dis: seen-class top-1 -4.00" in text and "Surviving (†): fashion: clip." in text


def test_the_query_scale_is_chosen_on_the_same_seeds_for_every_gamma():
    """γ = 1's row has five seeds (it is the pretrained block's DiffDis), the other γ one: the choice reads seed 0
    of each. Averaging γ = 1 over all its seeds here would pick 4.9, on seeds that are not comparable."""
    from diffdis.experiments.compare_emoji import chosen_gamma

    def runs(*top1_by_seed):
        return [{"seed": seed, "validation": {"top1": top1}} for seed, top1 in enumerate(top1_by_seed)]

    results = {"diffdis": runs(16.0, 10.0, 10.0, 10.0, 10.0), "diffdis-gamma-4.9": runs(14.1)}
    assert chosen_gamma(results, (0,)) is None  # until every γ is measured on the query seeds
    results.update({"diffdis-gamma-9.8": runs(11.7), "diffdis-gamma-19.6": runs(16.0)})
    assert chosen_gamma(results, (0,)) == 1.0  # a tie goes to the paper's smaller γ
    results["diffdis-gamma-9.8"] = runs(16.5)
    assert chosen_gamma(results, (0,)) == 9.8
    assert chosen_gamma(results, (0, 1)) is None and chosen_gamma(results, ()) is None


@pytest.mark.slow
def test_every_training_segment_records_its_command_code_and_versions(tmp_path, idx_dir):
    run = tmp_path / "run"
    train(preset("tiny", run_overrides(idx_dir, "train.max_steps=2", "train.checkpoint_every=2")), run, progress=False)
    train(preset("tiny", run_overrides(idx_dir, "train.max_steps=3", "train.checkpoint_every=2")), run, progress=False)
    segments = json.loads((run / "train_summary.json").read_text())["trained_by"]
    assert [s["from_step"] for s in segments] == [0, 2]  # the resume is its own segment
    for segment in segments:
        assert segment["command"] and segment["code"]
        assert segment["environment"]["torch"] == torch.__version__ and "diffusers" in segment["environment"]


@pytest.mark.slow
def test_init_from_a_saved_pipeline_takes_its_unet_and_starts_the_rest_new(tmp_path, idx_dir):
    gen = preset("tiny", run_overrides(idx_dir, "train.max_steps=2", "model.variant=gen"))
    base = train(gen, tmp_path / "gen", progress=False)
    config = preset("tiny", run_overrides(idx_dir, "train.max_steps=1", f"train.init_from={base}"))
    from diffdis.training.init import build_pipeline, resolve_config

    pipe = build_pipeline(resolve_config(config, tmp_path / "fine"), tmp_path / "fine")
    saved = DiffDisPipeline.from_pretrained(base).model.unet.state_dict()
    for key, value in pipe.model.unet.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert pipe.can_discriminate  # the text stream is new, built for the run's own variant


def _ita_range(tmp_path, idx_dir, gamma: float) -> list[float]:
    from diffdis.data.datasets import fixed_subset
    from diffdis.data.sources import validation_set
    from diffdis.experiments.compare_eval import ita_by_timestep, training_captions

    config = preset("tiny", run_overrides(idx_dir, "train.max_steps=30", f"model.gamma={gamma}", "train.log_every=5"))
    run = tmp_path / f"gamma-{gamma}"
    pipe = DiffDisPipeline.from_pretrained(train(config, run, progress=False))
    val = fixed_subset(validation_set(config), 32)
    return list(ita_by_timestep(pipe, config, val, training_captions(val), run).values())


@pytest.mark.slow
def test_l_ita_depends_on_the_text_timestep_at_a_large_query_scale(tmp_path, idx_dir):
    """At γ = √D the noisy query still carries its caption at small t_e, so the loss rises with t_e; at γ = 1 the
    curve is far flatter (the first edition's finding). A flat curve at γ = √D fails this test."""
    large = _ita_range(tmp_path, idx_dir, 19.6)
    small = _ita_range(tmp_path, idx_dir, 1.0)
    assert large == sorted(large) and large[-1] - large[0] > 0.1, large
    assert large[-1] - large[0] > 5 * abs(small[-1] - small[0]), (large, small)


@pytest.mark.slow
def test_a_quick_pretrain_then_fine_tune_study_writes_every_key(tmp_path):
    from diffdis.experiments.compare import run_compare
    from diffdis.experiments.compare_emoji import EmojiPlan
    from diffdis.experiments.compare_eval import Budget

    budget = Budget(fid_images=8, cost_rounds=1, cost_images=8)
    plan = EmojiPlan(pretrain_steps=3, steps=3, seeds=(0, 1), query_seeds=(), judge_epochs=1, quick=True)
    blocks = ("emoji-pretrain", "emoji-pretrained", "emoji-scratch")
    report = run_compare(tmp_path, blocks=blocks, models=("diffdis",), budget=budget, emoji=plan, progress=False)
    record = json.loads((tmp_path / "runs" / "emoji-pretrained" / "diffdis-seed1" / "result.json").read_text())
    assert record["config"]["train"]["init_from"].endswith("emoji-pretrain/gen-seed0/model")
    for key in ("trained_by", "evaluated_by", "training_log", "curve", "query", "validation", "test", "generation"):
        assert record[key], key
    assert set(record["test"]) >= {"unseen", "unseen_retrieval", "unseen_style", "seen_heldout_drawings"}
    assert "curve_unseen_top1" in record["curve"][-1] and record["test_ms_per_image"] > 0
    assert record["generation"]["unseen"]["fid_kid"]["fid"] > 0
    pretrain = json.loads((tmp_path / "runs" / "emoji-pretrain" / "gen-seed0" / "result.json").read_text())
    assert pretrain["generation"]["seen"]["judged_correct"] >= 0 and "test" not in pretrain  # gen: no discrimination
    rows = report["blocks"]["emoji-pretrained"]["rows"]
    assert rows["diffdis"]["unseen top-1"]["n"] == 2 and rows["diffdis"]["judged seen"]["n"] == 2
    assert report["pretrained_minus_scratch"]["diffdis"]["unseen top-1"]["seeds"] == 2
    assert report["families"]["second edition"]["tests"] == 1  # DiffDis pretrained - scratch
    assert "## Emoji: each model pretrained minus the same model from scratch" in (tmp_path / "compare.md").read_text()


@pytest.mark.slow
def test_the_third_edition_is_compute_matched_on_the_released_recipe(tmp_path):
    from diffdis.experiments.compare import run_compare, third_runs
    from diffdis.experiments.compare_blocks import StudyRun, run_config
    from diffdis.experiments.compare_emoji import EmojiPlan
    from diffdis.experiments.compare_eval import Budget

    plan = EmojiPlan(generator_steps=4, finetune_steps=2, third_seeds=(0,), judge_epochs=1, quick=True)
    arms = lambda rows: [f"emoji3-{b}/{m}-seed0" for b in ("pretrained", "scratch") for m in rows]  # noqa: E731
    expected = ["emoji3-generator/gen-seed0", *arms(("diffdis", "clip")), *arms(("diffdis-repa", "clip-repa"))]
    assert [run.name for run in third_runs(plan)] == expected  # the 2 x 2 before its REPA arms
    repa = run_config(StudyRun("emoji3-scratch", "clip-repa", 0), 6, [], tmp_path)
    assert repa.model.variant == "clip" and repa.train.align_weight == 0.5 and repa.train.align_layer == "mid"

    budget = Budget(fid_images=8, cost_rounds=1, cost_images=8)
    blocks = ("emoji3-generator", "emoji3-pretrained", "emoji3-scratch")
    run_compare(tmp_path, blocks=blocks, models=("diffdis", "clip"), budget=budget, emoji=plan, progress=False)
    runs = tmp_path / "runs"
    generator = json.loads((runs / "emoji3-generator" / "gen-seed0" / "result.json").read_text())
    assert generator["steps"] == 4 and generator["generation"]["seen"]["judged_correct"] >= 0
    for block in ("pretrained", "scratch"):
        for model in ("diffdis", "clip"):
            record = json.loads((runs / f"emoji3-{block}" / f"{model}-seed0" / "result.json").read_text())
            assert record["steps"] == (2 if block == "pretrained" else 6)  # equal image presentations: 4 + 2 = 6
            train = record["config"]["train"]
            assert train["warmup_steps"] == 100 and train["ema_decay"] == 0.999 and train["lam"] == 3.0
            assert train["init_from"].endswith("emoji3-generator/gen-seed0/model") == (block == "pretrained")
            assert record["test"]["unseen_far"]["images"] > 0


def test_the_concept_and_seed_interval_widens_when_one_concept_carries_the_difference():
    from diffdis.evaluation.significance import concept_seed_interval

    rng = np.random.default_rng(0)
    concepts = np.repeat(np.arange(40), 3)  # 40 concepts, 3 drawings each
    base = rng.random((5, 120)) < 0.3
    spread = base.copy()
    spread[:, ::6] = True  # a gain on every other drawing of every concept: broad
    narrow = base.copy()
    narrow[:, :12] = True  # the same sort of gain, from four concepts alone
    broad, concentrated = (concept_seed_interval(x, base, concepts) for x in (spread, narrow))
    assert broad["low"] > 0 and broad["concepts"] == 40 and broad["seeds"] == 5
    width = {name: r["high"] - r["low"] for name, r in (("broad", broad), ("concentrated", concentrated))}
    assert width["concentrated"] > width["broad"]  # concepts are a source of variation the seed-level t ignores
    same = concept_seed_interval(base, base, concepts)
    assert same["mean_difference"] == 0 and same["low"] == same["high"] == 0


def test_a_tuning_record_compares_two_curves_at_the_steps_both_measured(tmp_path):
    from diffdis.experiments.tuning import compare

    for name, top1 in (("base", [20.0, 25.0, 24.0]), ("other", [21.0, 26.0])):
        run = tmp_path / name
        run.mkdir()
        points = [{"step": 1000 * (i + 1), "unseen_top1": v, "unseen_top5": 50.0} for i, v in enumerate(top1)]
        segments = [{"from_step": 0, "command": f"diffdis release --out {run}", "code": "abc1234"}]
        summary = {"validation": points, "trained_by": segments, "train_seconds": 60.0 * len(points)}
        (run / "train_summary.json").write_text(json.dumps(summary))
        log = [{"step": s, "images_per_second": 100.0 + s / 1000} for s in (1000, 2500, 3000)]
        (run / "train_log.jsonl").write_text("\n".join(json.dumps(row) for row in log) + "\n")
    record = compare(tmp_path / "base", tmp_path / "other", tmp_path / "record.json")
    assert [p["step"] for p in record["points"]] == [1000, 2000]  # step 3,000: only the baseline measured it
    assert (
        record["points"][1]["baseline"]["unseen_top1"] == 25.0 and record["points"][1]["other"]["unseen_top1"] == 26.0
    )
    assert record["other"]["segments"][0]["code"] == "abc1234" and record["baseline"]["steps"] == 3000
    assert record["baseline"]["median_images_per_second_after_the_first_point"] == 102.75
    assert json.loads((tmp_path / "record.json").read_text())["points"] == json.loads(json.dumps(record["points"]))


def test_a_tuning_record_pairs_runs_of_different_step_costs_by_training_time(tmp_path):
    from diffdis.experiments.tuning import compare

    # the baseline trains at 100 img/s, the other (a wider model) at 50: its step 1,000 costs the baseline's 2,000
    for name, rate, steps in (("base", 100.0, (1000, 2000, 3000, 4000)), ("wide", 50.0, (1000, 2000))):
        run = tmp_path / name
        run.mkdir()
        points = [{"step": s, "unseen_top1": s / 100, "judged_seen": 1.0} for s in steps]
        segments = [{"from_step": 0, "command": f"diffdis release --out {run}", "code": "abc1234"}]
        summary = {"validation": points, "trained_by": segments, "train_seconds": 1.0}
        (run / "train_summary.json").write_text(json.dumps(summary))
        (run / "config.json").write_text(json.dumps({"train": {"batch_size": 60}}))
        log = [{"step": s, "images_per_second": rate} for s in (2100, 2200)]
        (run / "train_log.jsonl").write_text("\n".join(json.dumps(row) for row in log) + "\n")
    record = compare(tmp_path / "base", tmp_path / "wide", tmp_path / "record.json", by="time")
    assert [p["step"] for p in record["points"]] == [
        {"baseline": 2000, "other": 1000},
        {"baseline": 4000, "other": 2000},
    ]
    assert record["points"][1]["minutes"] == {"baseline": 40.0, "other": 40.0}  # 2,000 x 60 / 50 img/s = 40 min
    assert (
        record["points"][1]["baseline"]["unseen_top1"] == 40.0 and record["points"][1]["other"]["unseen_top1"] == 20.0
    )
    with pytest.raises(ValueError, match="'step' or 'time'"):
        compare(tmp_path / "base", tmp_path / "wide", tmp_path / "record.json", by="flops")


def test_the_third_editions_analysis_is_the_pre_registered_difference_of_gains(tmp_path):
    from diffdis.experiments.concept_intervals import ARMS, REPA_ARMS, THIRD_FAMILY, THIRD_HEADLINE, third_edition

    n, seeds = 427, range(3)  # the unseen test drawings, in the order every result file holds them
    rng = np.random.default_rng(0)
    base = (rng.random((len(seeds), n)) < 0.1).astype(int)
    lift = (rng.random((len(seeds), n)) < 0.2).astype(int)  # DiffDis from the generator gains more than clip
    scored = {name: base for name in ARMS} | {"DiffDis from the generator": np.maximum(base, lift)}

    def write(arms: dict):
        for name, (block, model) in arms.items():
            for seed in seeds:
                run = tmp_path / "runs" / block / f"{model}-seed{seed}"
                run.mkdir(parents=True, exist_ok=True)
                correct = [int(v) for v in scored.get(name, base)[seed]]
                (run / "result.json").write_text(json.dumps({"test": {"unseen": {"correct": correct}}}))

    lit = tmp_path / "lit"
    lit.mkdir()
    unseen = {"unseen": {"correct": [1] * 100 + [0] * (n - 100)}}
    (lit / "results.json").write_text(json.dumps({"discrimination": {"test": unseen}}))
    with pytest.raises(FileNotFoundError, match="the 2 x 2 is not measured yet"):
        third_edition(tmp_path, seeds, lit)
    write(ARMS)
    record = third_edition(tmp_path, seeds, lit)
    headline = record[THIRD_HEADLINE]
    gain = scored["DiffDis from the generator"] - base  # clip's gain is 0 here
    assert headline["all"]["concept_and_seed"]["mean_difference"] == pytest.approx(100 * gain.mean())
    assert headline["all"]["concept_and_seed"]["low"] > 0 and headline["all"]["seed_level"]["low"] > 0
    groups = record["groups"]
    assert groups["near"]["drawings"] + groups["far"]["drawings"] == groups["all"]["drawings"] == n
    assert groups["ImageNet-class"]["drawings"] + groups["other"]["drawings"] == n
    assert groups["all"]["concepts"] == 143 and 0 < groups["far"]["concepts"] < 143
    family = record["family (exploratory; Holm once complete)"]
    assert len(family["missing"]) == 4 and "holm_p" not in next(iter(family["tests"].values()))["concept_and_seed"]
    assert record["top1"]["clip from scratch"]["all"]["mean"] == pytest.approx(100 * base.mean())
    assert record["lit (reference line; one fit, its encoder saw ImageNet's classes)"]["all"] == pytest.approx(
        100 * 100 / n
    )
    write(REPA_ARMS)  # the family complete: Holm over its eight tests
    family = third_edition(tmp_path, seeds, lit)["family (exploratory; Holm once complete)"]
    assert not family["missing"] and set(family["tests"]) == set(THIRD_FAMILY) and len(THIRD_FAMILY) == 8
    for test in family["tests"].values():
        assert test["concept_and_seed"]["holm_p"] >= test["concept_and_seed"]["p_value"]
