"""The released emoji model: its long training run, with validation curves, and its figures of record.

`train_release` trains the emoji demo's settings (chosen on the unseen validation concepts) for 10,000 steps
instead of 12 minutes: a longer cosine schedule and a longer EMA horizon. Every `validate_every` steps the curve
scorer records, on validation data only, unseen-validation zero-shot (top-1/top-5, near and far concepts apart),
the held-out drawings of seen concepts, and generation judged on seen and validation concepts, with the time of
day: the run's `train_summary.json` holds the curve (docs/release.md reads it). The run resumes by itself from
its newest checkpoint, so a stopped machine loses at most `checkpoint_every` steps.

`evaluate_release` then reads the test concepts once (the emoji demo's evaluation) and `export_release` writes
the shipped folder (fp16 safetensors, model card, results) that `diffdis.list_pretrained()` lists.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from ..config import DEFAULT_GUIDANCE, Config, apply_overrides, preset
from ..data.emoji import EmojiData
from ..evaluation.emoji import emoji_generation, emoji_judge, emoji_zero_shot
from ..familiarity import save_familiarity
from ..model_card import repa_words, write_model_card
from ..pipeline import DiffDisPipeline
from ..pretrained import RELEASE_NAME, RELEASED_DIR
from ..provenance import code_version
from ..training import train
from ..training.checkpoint import checkpoints
from ..utils.charts import line_chart, save
from ..utils.results import write_json
from .demo import model_record
from .emoji_demo import (
    JUDGE_EPOCHS,
    evaluate_emoji_model,
    measured_figures,
    prompt_concepts,
    report,
)
from .emoji_settings import RECIPES, RELEASE, RELEASE_RUN

FP16_TOLERANCE = 1.0  # points of unseen-validation top-1 the fp16 export may differ from the trained weights

CURVE_GENERATION = {"num_inference_steps": 50, "guidance_scale": DEFAULT_GUIDANCE, "seed": 0}
CURVE_CONCEPTS = 48  # per group (seen, validation), two samples each


class EmojiCurve:
    """A train(scorers=...) entry: one point of the validation curves (never a test concept), with what the
    variant can do: zero-shot on the unseen validation concepts, judged samples of seen and validation prompts."""

    def __init__(self, emoji: EmojiData):
        self.emoji = emoji
        rng = np.random.default_rng(0)
        self.seen = [int(c) for c in rng.permutation(emoji.concepts("train"))[:CURVE_CONCEPTS]]
        self.val = [int(c) for c in rng.permutation(emoji.concepts("val"))[:CURVE_CONCEPTS]]
        self.judge = None

    def __call__(self, pipe) -> dict:
        point = {"wall_time": time.strftime("%Y-%m-%d %H:%M:%S")}  # with train_log.jsonl: the CPU time behind it
        if pipe.can_discriminate:
            figures = emoji_zero_shot(pipe, self.emoji, "val")
            for group in ("unseen", "unseen_near", "unseen_far", "seen_heldout_drawings"):
                point.update({f"{group}_{k}": round(figures[group][k], 2) for k in ("top1", "top5")})
        if pipe.can_generate:
            if self.judge is None:
                self.judge, self.judge_record = emoji_judge(self.emoji, epochs=JUDGE_EPOCHS)
            for group, concepts in (("seen", self.seen), ("val", self.val)):
                _, record = emoji_generation(pipe, self.emoji, self.judge, concepts, **CURVE_GENERATION)
                point[f"judged_{group}"] = round(record["judged_correct"], 2)
            point["judge_real_accuracy"] = round(self.judge_record["test_accuracy"], 2)
        return point


def train_release(
    out: str | Path = RELEASE_RUN,
    overrides: list[str] | None = None,
    progress: bool = True,
    name: str = RELEASE,
):
    """Train (or resume) the run of released model `name` in `out`; returns the saved pipeline's folder."""
    if name not in RECIPES:
        raise ValueError(f"no released model is called {name!r}; the recipes are {', '.join(RECIPES)}")
    config = preset("tiny", RECIPES[name] + list(overrides or []))
    emoji = EmojiData.load(config.model.resolution)
    emoji.check_split()
    return train(config, out, progress=progress, scorers=(EmojiCurve(emoji),))


def run_release(
    out: str | Path = RELEASE_RUN,
    overrides: list[str] | None = None,
    progress: bool = True,
    name: str = RELEASE,
    evaluate: bool = False,
):
    """Train (or resume), evaluate once on the test concepts (skipped when results.json already holds these
    weights' figures, unless `evaluate`: the evaluation gained a figure), and write the shipped folder of released
    model `name`."""
    out = Path(out)
    model_dir = train_release(out, overrides, progress, name)
    results = out / "results.json"
    summary = json.loads(results.read_text()) if results.is_file() else None
    if evaluate or summary is None or summary["model"]["training"]["parameter_checksums"] != _checksums(out):
        summary = evaluate_release(out, model_dir, overrides, name, "evaluate" if evaluate else "all")
    return export_release(summary, out, model_dir, name=name)


def _checksums(out: Path) -> list[str]:
    return json.loads((out / "train_summary.json").read_text())["parameter_checksums"]


def evaluate_release(
    out: Path, model_dir: Path, overrides: list[str] | None = None, name: str = RELEASE, stage: str = "all"
) -> dict:
    """The figures of record (emoji_demo.evaluate_emoji_model: the test concepts read here, once) with the run's
    validation curves; written to out/results.json."""
    config = Config.from_json(out / "config.json")
    emoji = EmojiData.load(config.model.resolution)
    training = json.loads((out / "train_summary.json").read_text())
    summary = {
        "command": f"diffdis release --name {name} --out {out}"
        + (f" --stage {stage}" if stage != "all" else "")
        + "".join(f" --set {o}" for o in overrides or []),
        "code": code_version(),
        "model": model_record(config, model_dir, out),
        "curves": training["validation"],
        **evaluate_emoji_model(
            DiffDisPipeline.from_pretrained(model_dir), emoji, out, {"train_s": training["train_seconds"]}, True
        ),
    }
    write_json(out / "results.json", summary)
    print(report(summary, f"DiffDis released emoji model {name}"))
    return summary


def export_release(summary: dict, out: Path, model_dir: Path, dest: Path | None = None, name: str = RELEASE) -> Path:
    """The shipped folder: the EMA weights in fp16 safetensors, the model card with the measured figures,
    samples.png, results.json and release.json (what `list_pretrained` shows). Checks that the fp16 weights give
    the fp32 model's validation figures before writing release.json."""
    dest = dest or RELEASED_DIR / name
    pipe = DiffDisPipeline.from_pretrained(model_dir)
    pipe.model.half()
    pipe.save_pretrained(dest)
    # the app's first `unfamiliar` check (it runs one per prompt) then takes no minute
    save_familiarity(pipe.familiarity(), pipe.text_encoder, dest)
    for file in ("samples.png", "model/train_summary.json"):
        shutil.copy(out / file, dest / Path(file).name)
    write_json(dest / "results.json", summary)
    write_model_card(
        dest, measured_figures(summary, f"the release's evaluation (`{summary['command']}`, results.json)")
    )
    emoji = EmojiData.load(pipe.config.model.resolution)
    fp16 = emoji_zero_shot(DiffDisPipeline.from_pretrained(dest), emoji, "val")["unseen"]
    fp32 = summary["discrimination"]["validation"]["unseen"]
    if abs(fp16["top1"] - fp32["top1"]) > FP16_TOLERANCE:
        raise RuntimeError(
            f"the fp16 export scores {fp16['top1']:.2f}% unseen-validation top-1 against the trained weights' "
            f"{fp32['top1']:.2f}%: not shipped (delete {dest} and export in fp32)"
        )
    write_json(dest / RELEASE_NAME, release_record(summary, emoji, fp16["top1"], name))
    write_model_card(dest)  # again, now with what release.json says of its training
    save(curves_chart(summary["curves"], summary["generation"]["judge"]["test_accuracy"]), dest / "curves.png")
    return dest


def best_step(run_dir: str | Path, key: str = "unseen_top1", tie: str = "unseen_top5") -> int:
    """The validation point to ship: the highest `key` (unseen-validation top-1) among the run's kept checkpoints
    (ties: `tie`, then the earlier step). Validation figures only; the test concepts are read after the choice."""
    run_dir = Path(run_dir)
    kept = {int(p.name.split("_")[-1]) for p in checkpoints(run_dir)}
    history = json.loads((checkpoints(run_dir)[-1] / "state.json").read_text())["history"]
    points = [p for p in history if p["step"] in kept and key in p]
    if not points:
        raise ValueError(f"{run_dir} keeps no checkpoint with a validation point; train with train.validate_every")
    return max(points, key=lambda p: (p[key], p.get(tie, 0), -p["step"]))["step"]


def checkpoint_run(run_dir: str | Path, step: int, dest: str | Path, averaged: bool = True) -> Path:
    """A run folder `dest` whose newest checkpoint is `run_dir`'s at `step` and whose config stops there: training
    it exports that checkpoint's EMA weights with its validation history (nothing is trained). `averaged` False
    exports the raw weights instead (its config then says train.ema_decay=0): the short end of the EMA horizon."""
    run_dir, dest = Path(run_dir), Path(dest)
    source = next((c for c in checkpoints(run_dir) if int(c.name.split("_")[-1]) == step), None)
    if source is None:
        raise FileNotFoundError(f"{run_dir} keeps no checkpoint of step {step}")
    config = Config.from_json(run_dir / "config.json")
    config = apply_overrides(config, [f"train.max_steps={step}", *(() if averaged else ("train.ema_decay=0",))])
    (dest / "checkpoints").mkdir(parents=True, exist_ok=True)
    config.to_json(dest / "config.json")
    shutil.copytree(source, dest / "checkpoints" / source.name, dirs_exist_ok=True)
    return train(config, dest, progress=False)


def curves_chart(curve: list[dict], judge_real: float):
    """The validation curves against training steps: zero-shot on the unseen validation concepts (all, near, far)
    and on held-out drawings of seen concepts; generation judged on seen and validation prompts, beside half the
    judge's rate on real drawings (the generation target)."""

    def series(key: str) -> dict[int, float]:
        return {p["step"]: p[key] for p in curve if key in p}

    zero_shot = {
        "unseen validation top-1": series("unseen_top1"),
        "unseen validation top-5": series("unseen_top5"),
        "near unseen top-1": series("unseen_near_top1"),
        "far unseen top-1": series("unseen_far_top1"),
        "seen held-out drawings top-1": series("seen_heldout_drawings_top1"),
    }
    generation = {
        "judged correct, seen prompts": series("judged_seen"),
        "judged correct, validation prompts": series("judged_val"),
        "half the judge's rate on real drawings": {p["step"]: judge_real / 2 for p in curve},
    }
    return line_chart(
        [(zero_shot, "zero-shot, validation (never a test concept)"), (generation, "generation, judged")],
        "training step",
        "%",
        log_x=False,
    )


def release_record(summary: dict, emoji: EmojiData, fp16_val_top1: float, name: str = RELEASE) -> dict:
    """release.json: what `diffdis.list_pretrained()` shows of the model."""
    test, gen = summary["discrimination"]["test"], summary["generation"]
    seen = gen["seen"]
    judged = np.array(seen["correct"]).reshape(seen["concepts"], -1).sum(1)  # per seen concept, samples judged right
    concepts = prompt_concepts(emoji)[0][: seen["concepts"]]
    recognised = sorted((c for c, n in zip(concepts, judged) if n), key=lambda c: -judged[concepts.index(c)])
    m = summary["model"]
    return {
        "name": name,
        "summary": "DiffDis on emoji drawings: draws the concepts it was taught and names drawings of concepts no "
        "training caption named",
        "resolution": m["config"]["model"]["resolution"],
        "knows": f"{len(emoji.concepts('train'))} emoji concepts by their CLDR names "
        f"and keywords; {test['unseen']['classes']} test and {len(emoji.concepts('val'))} validation concepts held "
        "out (vocabulary.json)",
        "figures": {
            "unseen_test_top1": round(test["unseen"]["top1"], 1),
            "unseen_test_top5": round(test["unseen"]["top5"], 1),
            "unseen_far_test_top1": round(test["unseen_far"]["top1"], 1),
            "unseen_near_test_top1": round(test["unseen_near"]["top1"], 1),
            "generation_judged_seen": round(seen["judged_correct"], 1),
            "generation_judged_unseen": round(gen["unseen"]["judged_correct"], 1),
            **{
                f"generation_judged_{group}_self_checked": round(gen[f"{group}_self_checked"]["judged_correct"], 1)
                for group in ("seen", "unseen")
                if f"{group}_self_checked" in gen
            },
            "judge_on_real_drawings": round(gen["judge"]["test_accuracy"], 1),
            "fp16_unseen_validation_top1": round(fp16_val_top1, 1),
        },
        # seen concepts whose samples the judge recognised in the evaluation, those with every sample first
        "draws_well": [emoji.names[c] for c in recognised],
        "training": {
            "steps": m["steps_trained"],
            "loop_minutes": round(summary["timings_s"]["train_s"] / 60, 1),  # wall clock, pauses included
            "machine": "2 CPU cores (docs/release.md: how the time was spent)",
            "code": m["training"]["trained_by"][-1]["code"],  # of its last training segment (docs/release.md)
        },
        "licences": release_licences(Config.from_dict(m["config"])),
        "results": "results.json",
    }


def release_licences(config: Config) -> str:
    """The licences and attributions of what released weights were trained on, and aligned to with REPA."""
    licences = (
        "weights Apache-2.0; trained on Noto Emoji (Apache-2.0), Twemoji (CC BY 4.0, attribution: Twemoji by "
        "Twitter, Inc and other contributors) and Fluent UI Emoji (MIT) art; OpenMoji (CC BY-SA 4.0) drawings only "
        "evaluated, names from its openmoji.json"
    )
    return licences + (f"; REPA: {repa_words(config)}" if config.train.align_weight > 0 else "")
