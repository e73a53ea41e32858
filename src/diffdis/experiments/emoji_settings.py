"""The emoji demo's settings, chosen on the unseen validation concepts (docs/emoji.md, "How the demo's settings were
chosen"): what the demo trains, what the released model trains longer, and the data the lit baseline fits on."""

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
