"""The emoji demo's settings, chosen on the unseen validation concepts (docs/emoji.md, "How the demo's settings were
chosen"): what the demo trains, what the released models train longer (their recipes, by name), and the data the
lit baseline fits on."""

from __future__ import annotations

from ..data.builtin import data_overrides

EMOJI_DEMO_OVERRIDES = [
    *data_overrides("emoji"),
    "model.attention_levels=false,false,true",
    "train.lam=3",
    "train.emoji_skin_tones=false",
    "train.max_steps=2000",
    "train.max_minutes=12",
    "train.validate_every=0",
    "train.final_validation=false",
    "train.checkpoint_every=250",
]

RELEASE = "emoji-16"  # the first released model's folder name, as list_pretrained() and from_pretrained() take it

# The demo's chosen settings, trained longer: its time cap and step count replaced, validation curves on.
RELEASE_OVERRIDES = [
    *(o for o in EMOJI_DEMO_OVERRIDES if o.split("=")[0] not in ("train.max_steps", "train.max_minutes")),
    "train.max_steps=10000",
    "train.ema_decay=0.999",  # a horizon of ~1,000 steps: a tenth of the run (the demo's 0.995 suits 500 steps)
    "train.validate_every=1000",
    "train.final_validation=true",
    "train.checkpoint_every=1000",  # at every validation, all ten kept: the curves can choose the weights
    "train.keep_checkpoints=10",
    "train.sample_rows=8",
]
# name -> its recipe: the released models, each reproduced by `diffdis release --name NAME`
# (a UNet of twice the width, 64/128/128, was behind this recipe at 15, 30 and 45 minutes: runs/emoji-tuning/wide.json).
# emoji-16's second edition adds REPA, the mid block aligned to EfficientNet-Lite0 at the weight chosen on gen's curves
# (docs/visual-prior.md); its first edition, without it, was trained in runs/emoji-release (docs/release.md).
RECIPES: dict[str, list[str]] = {RELEASE: [*RELEASE_OVERRIDES, "train.align_weight=1.0"]}
RELEASE_RUN = "runs/emoji-release-2"  # where `diffdis release` trains by default: the shipped edition's run
