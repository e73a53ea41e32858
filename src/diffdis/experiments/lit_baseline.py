"""The locked-image baseline `lit` on the emoji set (lit.py): fitted on the emoji demo's training images (its
captions, no skin tones), scored with the same evaluation as every emoji model, on the validation concepts (to
choose settings) and, once per reported figure, on the test concepts. Seconds of fitting once the encoder's
features are cached (about 3 minutes the first time on 2 CPU cores).

The encoder saw ImageNet-1k with labels: the unseen figures are also given apart for the concepts whose names
match an ImageNet class (data/imagenet.py)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ..config import preset
from ..data.emoji import EmojiData
from ..evaluation.emoji import emoji_zero_shot
from ..image_features import SHARP_EMOJI, emoji_sharp
from ..lit import LitSettings, LockedImageText
from ..models.image_encoders import DEFAULT_IMAGE_ENCODER, image_encoder
from ..provenance import provenance
from ..utils.results import write_json
from .emoji_settings import EMOJI_DEMO_OVERRIDES

SPLITS = ("val", "test")
LIT_SETTINGS = LitSettings()  # 300 full-batch steps, lr 1e-2: chosen on the unseen validation concepts (docs)


def fit_emoji_lit(
    encoder: str = DEFAULT_IMAGE_ENCODER, settings: LitSettings = LIT_SETTINGS, input_size: int | None = None
) -> LockedImageText:
    # The emoji demo's data settings at the drawings' sharp source: lit reads images at 64 px (its config says so,
    # and `diffdis evaluate` loads the evaluation sets at that size for it).
    config = preset("tiny", [*EMOJI_DEMO_OVERRIDES, f"model.resolution={SHARP_EMOJI}"])
    emoji = EmojiData.load(SHARP_EMOJI)
    emoji.check_split()
    data, _ = emoji.training_set(config.train.emoji_skin_tones)
    return LockedImageText.fit(image_encoder(encoder, input_size), config, data, None, emoji.vocabulary(), settings)


def run_lit(
    out: str | Path = "runs/lit-emoji",
    encoder: str = DEFAULT_IMAGE_ENCODER,
    splits: tuple[str, ...] = ("val",),
    input_size: int | None = None,
) -> dict:
    """Fit lit, score it on `splits` ("val" to choose settings; "test" is read once per reported figure) and
    write out/results.json and the fitted model (out/model). `input_size` overrides the encoder's own (tests)."""
    if not splits or set(splits) - set(SPLITS):
        raise ValueError(f"splits={splits!r}; use 'val' (to choose settings) and/or 'test' (to report)")
    out = Path(out)
    start = time.perf_counter()
    lit = fit_emoji_lit(encoder, input_size=input_size)
    fit_s = time.perf_counter() - start
    lit.save(out / "model")
    sharp = EmojiData.load(SHARP_EMOJI)  # the evaluation sets from the sharp source, as lit trained
    start = time.perf_counter()
    figures = {split: emoji_zero_shot(lit, sharp, split) for split in splits}
    summary = {
        **provenance(),
        "model": {
            "kind": "lit: frozen image encoder, pooled features, one linear map into the text space",
            "image_encoder": lit.image_encoder.spec.name,
            "encoder_weights": lit.image_encoder.spec.weights,
            "encoder_licence": lit.image_encoder.spec.licence,
            "encoder_trained_on": lit.image_encoder.spec.trained_on,
            "encoder_input": f"{SHARP_EMOJI}-px drawings resized to {lit.image_encoder.input_size} px (bicubic)",
            "text_encoder": lit.config.model.text_encoder,
            "settings": asdict(LIT_SETTINGS),
            "trained_on": "the emoji demo's training images and captions (no skin tones)",
        },
        "data": sharp.record(),
        "discrimination": figures,
        "timings_s": {"fit_s": fit_s, "evaluate_s": time.perf_counter() - start},
    }
    write_json(out / "results.json", summary)
    return summary


# The settings compared on the unseen validation concepts (runs/emoji-tuning/lit.json): the optimiser, the
# encoder's input size, and the source the encoder reads (the 64-px drawings, or the 16-px training pixels).
SWEEP: tuple[tuple[str, LitSettings, int | None, bool], ...] = (
    ("default", LIT_SETTINGS, None, True),
    ("1000 steps", LitSettings(steps=1000), None, True),
    ("lr 3e-3", LitSettings(lr=3e-3), None, True),
    ("weight decay 1e-2", LitSettings(weight_decay=1e-2), None, True),
    ("112-px input", LIT_SETTINGS, 112, True),
    ("16-px source", LIT_SETTINGS, None, False),
)


def sweep_lit(out: str | Path = "runs/emoji-tuning/lit.json", encoder: str = DEFAULT_IMAGE_ENCODER) -> dict:
    """Score every SWEEP setting on the unseen validation concepts only; the result file records each."""
    runs = {}
    for name, settings, input_size, sharp_source in SWEEP:
        config = preset("tiny", EMOJI_DEMO_OVERRIDES)
        emoji = EmojiData.load(config.model.resolution)
        data, _ = emoji.training_set(config.train.emoji_skin_tones)
        rows = emoji.trained_rows(config.train.emoji_skin_tones)
        sharp = emoji_sharp(rows) if sharp_source else None
        lit = LockedImageText.fit(image_encoder(encoder, input_size), config, data, sharp, emoji.vocabulary(), settings)
        figures = emoji_zero_shot(lit, EmojiData.load(SHARP_EMOJI) if sharp_source else emoji, "val")
        runs[name] = {
            "settings": asdict(settings),
            "input_size": lit.image_encoder.input_size,
            "source": f"{SHARP_EMOJI}-px drawings" if sharp_source else f"{config.model.resolution}-px training pixels",
            **{k: {m: figures[k].get(m) for m in ("top1", "top5", "concepts")} for k in _GROUPS if k in figures},
            "seen_heldout_drawings_top1": figures["seen_heldout_drawings"]["top1"],
        }
        print(name, runs[name]["unseen"], flush=True)
    record = {
        **provenance(),
        "purpose": "choose lit's settings on the unseen validation concepts (71 concepts); no test concept read",
        "encoder": encoder,
        "runs": runs,
    }
    write_json(out, record)
    return record


_GROUPS = ("unseen", "unseen_near", "unseen_far", "unseen_encoder_seen", "unseen_encoder_unseen")


def lit_lines(summary: dict) -> list[str]:
    """The result as text lines: every unseen group with its size."""
    lines = [f"lit ({summary['model']['image_encoder']}, frozen) on the emoji concepts"]
    for split, figures in summary["discrimination"].items():
        for key in _GROUPS:
            if key in figures and figures[key].get("images"):
                f = figures[key]
                size = f" ({f['concepts']} concepts)" if "concepts" in f else ""
                lines.append(f"  {split} {key}{size}: top-1 {f['top1']:.1f}%, top-5 {f['top5']:.1f}%")
        seen = figures["seen_heldout_drawings"]
        lines.append(f"  {split} seen held-out drawings: top-1 {seen['top1']:.1f}%")
    return lines
