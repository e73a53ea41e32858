"""The released emoji model: its long training run, with validation curves, and its figures of record.

`train_release` trains the emoji demo's settings (chosen on the unseen validation concepts) for hours instead of
12 minutes: a longer cosine schedule and a longer EMA horizon. Every `validate_every` steps the curve scorer
records, on validation data only, unseen-validation zero-shot (top-1/top-5, near and far concepts apart), the
held-out drawings of seen concepts, and generation judged on seen and validation concepts, with the training
seconds so far: the run's `train_summary.json` holds the curve. The run resumes by itself from its newest
checkpoint, so a stopped machine loses at most `checkpoint_every` steps.

`evaluate_release` then reads the test concepts once (the emoji demo's evaluation) and `export_release` writes
the shipped folder (fp16 safetensors, model card, results) that `diffdis.list_pretrained()` lists.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import DEFAULT_GUIDANCE
from ..data.emoji import EmojiData
from ..evaluation.emoji import emoji_generation, emoji_judge, emoji_zero_shot
from ..training import train
from .emoji_demo import EMOJI_DEMO_OVERRIDES

# The demo's chosen settings, trained longer: its time cap and step count replaced, validation curves on.
RELEASE_OVERRIDES = [
    *(o for o in EMOJI_DEMO_OVERRIDES if o.split("=")[0] not in ("train.max_steps", "train.max_minutes")),
    "train.max_steps=10000",
    "train.ema_decay=0.999",  # a horizon of ~1,000 steps: a tenth of the run (the demo's 0.995 suits 500 steps)
    "train.validate_every=1000",
    "train.final_validation=true",
    "train.checkpoint_every=500",
    "train.sample_rows=8",
]
CURVE_GENERATION = {"num_inference_steps": 50, "guidance_scale": DEFAULT_GUIDANCE, "seed": 0}
CURVE_CONCEPTS = 48  # per group (seen, validation), two samples each


class EmojiCurve:
    """A train(scorers=...) entry: one point of the validation curves (never a test concept)."""

    def __init__(self, emoji: EmojiData):
        self.emoji = emoji
        rng = np.random.default_rng(0)
        self.seen = [int(c) for c in rng.permutation(emoji.concepts("train"))[:CURVE_CONCEPTS]]
        self.val = [int(c) for c in rng.permutation(emoji.concepts("val"))[:CURVE_CONCEPTS]]
        self.judge = None

    def __call__(self, pipe) -> dict:
        if self.judge is None:
            self.judge, self.judge_record = emoji_judge(self.emoji)
        figures = emoji_zero_shot(pipe, self.emoji, "val")
        point = {
            "wall_time": time.strftime("%Y-%m-%d %H:%M:%S"),  # with train_log.jsonl: the CPU time behind each point
            **{
                f"{group}_{k}": round(figures[group][k], 2)
                for group in ("unseen", "unseen_near", "unseen_far", "seen_heldout_drawings")
                for k in ("top1", "top5")
            },
        }
        for group, concepts in (("seen", self.seen), ("val", self.val)):
            _, record = emoji_generation(pipe, self.emoji, self.judge, concepts, **CURVE_GENERATION)
            point[f"judged_{group}"] = round(record["judged_correct"], 2)
        point["judge_real_accuracy"] = round(self.judge_record["test_accuracy"], 2)
        return point


def train_release(out: str | Path = "runs/emoji-release", overrides: list[str] | None = None, progress: bool = True):
    """Train (or resume) the released model's run in `out`; returns the saved pipeline's folder."""
    from ..config import preset

    config = preset("tiny", RELEASE_OVERRIDES + list(overrides or []))
    emoji = EmojiData.load(config.model.resolution)
    emoji.check_split()
    return train(config, out, progress=progress, scorers=(EmojiCurve(emoji),))


def run_release(out: str | Path = "runs/emoji-release", overrides: list[str] | None = None, progress: bool = True):
    """Train (or resume), then evaluate once on the test concepts and write the shipped folder."""
    model_dir = train_release(out, overrides, progress)
    return model_dir
