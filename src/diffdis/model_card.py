"""The model card: README.md in a saved model folder, written from what the folder holds.

It says what the model is, what it was trained on and how long, the figures measured on these weights and how
each was made, how to use it, and what it is not for. `save_pretrained` writes it (and removes measured.json,
whose figures belong to the weights it replaces); training rewrites it once the run's summary is in the folder;
whoever measures the saved weights (the demo) records the figures with `write_model_card(folder, measured)`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import Config
from .data.emoji.packages import PACKAGES
from .models.image_encoders import encoder_licence
from .pretrained import RELEASE_NAME

CARD_NAME = "README.md"
MEASURED_NAME = "measured.json"  # {"source": ..., "figures": [{"name", "value", "how"}, ...]}
FUSION_WORDS = {"all": "every down and mid block", "mid": "the mid block only", "none": "no UNet block"}


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_model_card(folder: str | Path, measured: dict | None = None) -> Path:
    """(Re)write `folder`/README.md; with `measured`, first record those figures in `folder`/measured.json."""
    folder = Path(folder)
    if measured is not None:
        (folder / MEASURED_NAME).write_text(json.dumps(measured, indent=2) + "\n")
    path = folder / CARD_NAME
    path.write_text(model_card(folder))
    return path


def model_card(folder: Path) -> str:
    config = Config.from_json(folder / "diffdis_config.json")
    summary = _read_json(folder / "train_summary.json")
    vocabulary = _read_json(folder / "vocabulary.json")
    measured = _read_json(folder / MEASURED_NAME)
    release = _read_json(folder / RELEASE_NAME)  # a model shipped with the package (pretrained.py)
    m, t = config.model, config.train
    data = " + ".join(str(s) for s in t.sources)
    where = release["name"] if release else "path/to/this/folder"
    emoji = bool(vocabulary and vocabulary.get("data") == "emoji")
    example = (
        ("an emoji of red apple.", ("red apple", "rocket", "cat face"))
        if emoji
        else ("a photo of a dress.", ("dress", "coat", "sandal"))
    )
    tags = ["diffdis", "text-to-image", "zero-shot-image-classification", "image-text-retrieval"]
    front = ["---", "library_name: diffdis", "tags:", *[f"- {tag}" for tag in tags]]
    if any(s.kind == "fashion-mnist" for s in t.sources):
        front += ["datasets:", "- fashion_mnist"]
    lines = [*front, "---", "", f"# DiffDis model: {folder.resolve().name}", ""]
    lines += [
        f"A `{m.variant}` model: one latent-diffusion UNet that {m.declared.tasks}. Images are "
        f"{m.resolution}x{m.resolution} with {m.image_channels} channel(s).",
        "",
        "## Model",
        "",
        *_table(
            [
                ("image space", "pixels" if m.autoencoder == "none" else f"AutoencoderKL latents ({m.autoencoder})"),
                ("text encoder (frozen)", m.text_encoder),
                ("UNet channels", " / ".join(map(str, m.block_out_channels))),
                ("text stream joins", FUSION_WORDS[m.fusion]),
                ("unique transformer", f"{m.transformer_blocks} blocks, width {m.transformer_width}"),
                ("query diffusion", f"γ = {m.gamma}, predicts the {m.text_prediction}, trained by {m.query_training}"),
            ]
        ),
        "",
        "## Training data",
        "",
        *_data_lines(config, data, vocabulary),
        "",
        "## Training",
        "",
        *_training_lines(config, summary),
        *(_release_lines(release) if release else []),
        "",
        "## Measured on these weights",
        "",
        *_measured_lines(measured),
        "",
        "## Use",
        "",
        "```python",
        "from diffdis import DiffDisPipeline",
        "",
        f'pipe = DiffDisPipeline.from_pretrained("{where}")',
        f'images = pipe.generate(["{example[0]}"])',
        f"prediction = pipe.predict(images, {json.dumps(list(example[1]))})",  # the quotes ruff format keeps
        "print(prediction.top_k(3))",
        "```",
        "",
        f"or `diffdis generate|classify|retrieve --model {where} ...`, or `diffdis app --model {where}` "
        "for the web app.",
        "",
        "## Intended use and limitations",
        "",
        "- Research on joint generative and discriminative diffusion models; not a production classifier or image "
        "generator.",
        f"- It knows the words of its training captions ({data}). Prompts and labels far from them get weak images "
        "and arbitrary scores; `pipe.unfamiliar(texts)` flags them.",
        "- Classification among classes that training captions named is seen-class classification; only classes "
        "no caption named measure zero-shot transfer.",
        "- Its probabilities are a softmax over the labels given: they rank those labels and say nothing about "
        "labels left out.",
        "- It reproduces the content and the biases of its training images and captions.",
        "- Not for decisions about people, and not as evidence of what anything looks like outside its training "
        "images.",
        "",
    ]
    return "\n".join(lines)


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("", "")) -> list[str]:
    return [f"| {header[0]} | {header[1]} |", "| --- | --- |", *[f"| {a} | {b} |" for a, b in rows]]


def _data_lines(config: Config, data: str, vocabulary: dict | None) -> list[str]:
    t = config.train
    if vocabulary and vocabulary.get("data") == "emoji":
        return _emoji_lines(vocabulary)
    lines = [f"`{data}`, captions `{t.captions}`; {t.val_size} training examples held out for validation."]
    if t.holdout_classes:
        lines.append(f"Held out of training entirely (images and captions): {', '.join(map(str, t.holdout_classes))}.")
    if vocabulary:
        lines += ["", "Class names its training captions used:", ""]
        lines += [f"- {name}: {', '.join(words)}" for name, words in vocabulary["classes"].items()]
    return lines


def _emoji_lines(vocabulary: dict) -> list[str]:
    """The emoji set: what was held out, and the licences and attributions its art requires."""
    record = vocabulary["data_record"]
    counts = record["concepts"]
    lines = [
        f"The built-in `emoji` set (data checksum `{record['checksum'][:16]}`, split seed {record['split_seed']}): "
        f"{counts['train']} concepts trained on, drawn in the styles {', '.join(record['training_styles'])}; "
        f"{counts['test']} concepts held out for zero-shot testing and {counts['val']} for validation (no image "
        "and no caption of theirs, and no caption containing their names, was trained on); the "
        f"{record['unseen_style']} style was never trained on. `vocabulary.json` lists every concept by name.",
        "",
        "Art and names used under these licences (required attribution included):",
        "",
    ]
    lines += [
        f"- {p.spec}: {p.licence}" + (f". Attribution: {p.attribution}" if p.attribution else "") for p in PACKAGES
    ]
    lines += [
        "",
        "The Twemoji art (CC BY 4.0) requires attribution, and images this model generates derive from training on "
        "it. OpenMoji (CC BY-SA 4.0, attribution required) gave the CLDR names and keywords of the captions; its "
        "drawings were used for evaluation only, never trained on. Apple, Facebook and JoyPixels art was not used "
        "(unclear or restrictive licences).",
    ]
    return lines


def _training_lines(config: Config, summary: dict | None) -> list[str]:
    t = config.train
    rows = [
        ("batch", f"{t.batch_size} x {t.gradient_accumulation} accumulation per process"),
        ("learning rate", f"UNet {t.lr_unet:g}, new modules {t.lr_new:g}, warm-up {t.warmup_steps} steps"),
        ("loss", f"L_IG + {t.lam:g} L_ITA; gradient clip {t.grad_clip:g}{' per loss' if t.clip_per_loss else ''}"),
        ("condition dropout", f"text {t.text_dropout:g}, image {t.image_dropout:g} (classifier-free guidance)"),
        ("weights", f"EMA, decay {t.ema_decay:g}"),
        ("precision", t.mixed_precision if t.mixed_precision != "no" else "float32"),
    ]
    if t.align_weight > 0:
        rows.append(("REPA (training only)", repa_words(config)))
    if summary is None:
        return [*_table(rows), "", "No training summary in this folder (not saved by `diffdis train`)."]
    rows = [
        ("steps", f"{summary['steps']} of train.max_steps={t.max_steps}"),
        ("time", f"{summary['train_seconds'] / 60:.1f} min on {summary['processes']} process(es)"),
        *rows,
    ]
    scored = [check for check in summary.get("validation", []) if "val_top1" in check]  # gen models score none
    for check in scored[-1:]:
        rows.append(("last validation", f"top-1 {check['val_top1']:.2f}% at step {check['step']} (held-out images)"))
    return _table(rows)


def repa_words(config: Config) -> str:
    """What a REPA-trained model's layer was aligned to, and the licence of that encoder's weights."""
    t = config.train
    return (
        f"{t.align_layer} aligned to the frozen {t.align_encoder} image encoder's features, weight "
        f"{t.align_weight:g}; that encoder's weights: {encoder_licence(t.align_encoder)}"
    )


def _release_lines(release: dict) -> list[str]:
    """How a released model was trained, as its release.json says."""
    t = release["training"]
    return [
        "",
        f"Released as `{release['name']}` (`diffdis.list_pretrained()`): {t['steps']} steps, {t['loop_minutes']} "
        f"minutes of training loop on {t['machine']}, code {t['code']}; validation curves in curves.png.",
    ]


def _measured_lines(measured: dict | None) -> list[str]:
    if not measured:
        return [
            "No figures measured on these weights are recorded here (`diffdis evaluate --model FOLDER` measures them)."
        ]
    rows = [(f["name"], f"{f['value']}" + (f" ({f['how']})" if f.get("how") else "")) for f in measured["figures"]]
    return [f"By {measured['source']}.", "", *_table(rows, ("figure", "value (how it was made)"))]
