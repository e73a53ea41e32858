"""Configuration: frozen dataclasses, the named presets, and `key=value` overrides.

A run is fully described by one `Config`; its resolved form is written as JSON beside every run and every
saved pipeline, and read back with `Config.from_dict`. Bad keys and values are refused here, before any
compute, with the valid choices in the message.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_VERSION = 1
VARIANTS = ("diffdis", "gen", "dis", "clip")
DATA_SOURCES = ("fashion-mnist", "shapes")


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message says which and what would work."""


@dataclass(frozen=True)
class ModelConfig:
    """The network and both diffusion processes."""

    # diffdis: both tasks (the paper). Single-task baselines trained by the same loop: gen (L_IG only),
    # dis (L_ITA only, query diffusion), clip (L_ITA on a pooled UNet-encoder embedding, no diffusion).
    variant: str = "diffdis"
    resolution: int = 16  # image side in pixels after resizing
    image_channels: int = 1  # 1 = greyscale, 3 = RGB
    autoencoder: str = "none"  # "none" (pixel space) or a folder holding a diffusers AutoencoderKL
    text_encoder: str = "minilm"  # "minilm" (packaged all-MiniLM-L6-v2) or a folder with a CLIP text model
    text_max_length: int = 32  # tokens in the text condition c
    # UNet (image branch). One entry per resolution level.
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    attention_levels: tuple[bool, ...] = (False, True, True)  # which levels carry (dual-stream) attention
    layers_per_block: int = 1
    attention_head_dim: int = 16
    norm_num_groups: int = 8
    # Text stream and unique transformer (paper Fig. 2-3).
    transformer_blocks: int = 2  # M
    transformer_width: int = 128
    transformer_head_dim: int = 32
    # Diffusion of both streams.
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"  # any diffusers beta schedule: linear, scaled_linear, squaredcos_cap_v2
    beta_start: float = 0.0001
    beta_end: float = 0.02
    gamma: float = 1.0  # scale of the clean text query before noising (paper Eq. 6)
    text_prediction: str = "sample"  # what the text head predicts: "sample" (ê_0, paper) or "epsilon"

    def validate(self) -> None:
        levels = len(self.block_out_channels)
        if len(self.attention_levels) != levels:
            raise ConfigError(
                f"model.attention_levels has {len(self.attention_levels)} entries but model.block_out_channels "
                f"has {levels}; give one flag per resolution level"
            )
        if not any(self.attention_levels):
            raise ConfigError("model.attention_levels has no True entry; the text stream needs attention blocks")
        if self.image_channels not in (1, 3):
            raise ConfigError(f"model.image_channels={self.image_channels}; use 1 (greyscale) or 3 (RGB)")
        if self.variant not in VARIANTS:
            raise ConfigError(f"model.variant={self.variant!r}; use one of {', '.join(VARIANTS)}")
        if self.text_prediction not in ("sample", "epsilon"):
            raise ConfigError(f"model.text_prediction={self.text_prediction!r}; use 'sample' or 'epsilon'")
        if self.gamma <= 0:
            raise ConfigError(f"model.gamma={self.gamma}; it must be positive")
        for width in self.block_out_channels:
            if width % self.norm_num_groups or width % self.attention_head_dim:
                raise ConfigError(
                    f"model.block_out_channels entry {width} is not divisible by model.norm_num_groups="
                    f"{self.norm_num_groups} and model.attention_head_dim={self.attention_head_dim}"
                )
        if self.transformer_width % self.transformer_head_dim:
            raise ConfigError(
                f"model.transformer_width={self.transformer_width} is not divisible by "
                f"model.transformer_head_dim={self.transformer_head_dim}"
            )
        downsamples = 2 ** (levels - 1)
        if self.resolution % downsamples:
            raise ConfigError(
                f"model.resolution={self.resolution} must be divisible by {downsamples} "
                f"(the UNet halves it {levels - 1} times)"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Data, optimisation, the unified objective (paper Eq. 9) and bookkeeping."""

    data: str = "fashion-mnist"  # a source, or several joined with "+" (fashion-mnist+shapes)
    data_dir: str = "/usr/share/datasets/fashion-mnist"
    val_size: int = 2000  # held out from the training split for in-training validation
    shapes_size: int = 20000  # images of the procedural `shapes` source, when it is used
    batch_size: int = 64
    max_steps: int = 2000
    max_minutes: float = 0.0  # wall-clock cap on the loop (0 = none); the run stops cleanly and saves
    lr_unet: float = 1e-3  # the image branch (pretrained when initialised from Stable Diffusion)
    lr_new: float = 1e-3  # text stream, unique transformer, head, null latent, logit scale
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    lam: float = 1.0  # λ in L = L_IG + λ·L_ITA
    text_dropout: float = 0.1  # generation pass: caption replaced by the empty caption (CFG)
    image_dropout: float = 0.1  # discrimination pass: image replaced by the learned null latent (CFG)
    logit_scale_init: float = 14.285714  # 1/0.07 as in CLIP; learnable, clamped at 100
    ema_decay: float = 0.995
    mixed_precision: str = "no"  # no, fp16, bf16
    gradient_checkpointing: bool = False
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 25
    validate_every: int = 500  # 0 = only at the end
    val_images: int = 500
    val_steps: int = 2  # text-denoising steps for in-training zero-shot validation
    seed: int = 0

    def validate(self) -> None:
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"train.mixed_precision={self.mixed_precision!r}; use no, fp16 or bf16")
        if self.batch_size < 2:
            raise ConfigError("train.batch_size must be at least 2: the InfoNCE loss needs negatives")
        for name in ("text_dropout", "image_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"train.{name}={getattr(self, name)}; it must lie in [0, 1)")
        if self.max_steps < 1:
            raise ConfigError(f"train.max_steps={self.max_steps}; it must be at least 1")
        if self.checkpoint_every < 1:
            raise ConfigError(f"train.checkpoint_every={self.checkpoint_every}; it must be at least 1")
        data_sources(self.data)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    version: int = CONFIG_VERSION

    def validate(self) -> Config:
        self.model.validate()
        self.train.validate()
        if "shapes" in data_sources(self.train.data) and self.model.image_channels != 3:
            raise ConfigError("train.data includes shapes, whose captions name colours: set model.image_channels=3")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        version = data.get("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(
                f"this config has version {version}; this diffdis reads version {CONFIG_VERSION}. "
                "Re-save the model with a matching diffdis release."
            )
        model = _build(ModelConfig, data.get("model", {}), "model")
        train = _build(TrainConfig, data.get("train", {}), "train")
        return cls(model=model, train=train).validate()

    @classmethod
    def from_json(cls, path: str | Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))


def data_sources(spec: str) -> list[str]:
    """`fashion-mnist+shapes` -> the source names, refused unless each is known."""
    names = [name.strip() for name in spec.split("+")]
    unknown = [name for name in names if name not in DATA_SOURCES]
    if unknown:
        raise ConfigError(
            f"train.data={spec!r} names unknown sources {unknown}; use {' or '.join(DATA_SOURCES)}, "
            "or several joined with '+' (e.g. fashion-mnist+shapes)"
        )
    return names


PRESETS: dict[str, Config] = {
    # CPU: tests and the demo. 16x16 greyscale pixels, MiniLM text, attention at 8x8 and 4x4.
    "tiny": Config(),
}


def preset(name: str, overrides: list[str] | None = None) -> Config:
    """The named preset with `section.key=value` overrides applied, validated."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return apply_overrides(PRESETS[name], overrides or [])


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Apply `model.gamma=2` style overrides; unknown keys and unparsable values are refused."""
    sections = {"model": config.model, "train": config.train}
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in sections:
            raise ConfigError(f"override {item!r} is not of the form model.KEY=VALUE or train.KEY=VALUE")
        current = sections[section]
        fields = {f.name: f for f in dataclasses.fields(current)}
        if name not in fields:
            raise ConfigError(f"unknown key {key!r}; valid {section} keys: {', '.join(sorted(fields))}")
        hint = typing.get_type_hints(type(current))[name]
        sections[section] = dataclasses.replace(current, **{name: _parse(raw.strip(), hint, key)})
    return Config(model=sections["model"], train=sections["train"]).validate()


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"unknown {section} keys {unknown}; valid keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()})


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """JSON value -> the field's type (lists become tuples); wrong types are refused."""
    if typing.get_origin(hint) is tuple:
        (inner, _) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(_coerce(v, inner, key) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be of type {hint.__name__}, got {value!r}")
    return value


def _parse(raw: str, hint: Any, key: str) -> Any:
    """Command-line text -> the field's type: `1,2,3` for tuples, true/false for booleans."""
    if typing.get_origin(hint) is tuple:
        (inner, _) = typing.get_args(hint)
        return tuple(_parse(part.strip(), inner, key) for part in raw.split(",") if part.strip())
    if hint is bool:
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key}={raw!r} is not a boolean; use true or false")
    try:
        return hint(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a valid {hint.__name__}") from None
