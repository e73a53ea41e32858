"""Configuration: frozen dataclasses, the named presets, and `key=value` overrides.

A run is fully described by one `Config`; its resolved form is written as JSON beside every run and every
saved pipeline, and read back with `Config.from_dict`. Bad keys and values are refused here, before any
compute, with the valid choices in the message.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .specs import LABELLED, DataSpec, SpecError, parse_data, parse_spec

CONFIG_VERSION = 1
QUERY_STARTS = ("noise", "fixed", "zero")  # e_T: Gaussian per image, one Gaussian for all images, or 0
FUSIONS = ("all", "mid", "none")  # where the text stream joins the UNet (ModelConfig.fusion)
QUERY_TRAINING = ("diffusion", "regression")  # ModelConfig.query_training
CAPTION_STYLES = ("varied", "fixed")  # TrainConfig.captions (data/vocabulary.py)
# Inference defaults (the pipeline, the CLI and the experiments read them from here).
DEFAULT_GENERATION_STEPS = 50
DEFAULT_GUIDANCE = 3.0  # classifier-free guidance of generation; 1 = none
DEFAULT_QUERY_STEPS = 2  # text-query denoising steps (accuracy is flat from 1 to 50 steps: docs/speed.md)
DEFAULT_QUERY_GUIDANCE = 1.0
FROM_INIT = "from-init"  # model.text_encoder / model.autoencoder: taken from train.init_from


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message says which and what would work."""


class Answer(enum.Enum):
    """How a variant answers image -> text."""

    DIFFUSED = "diffused"  # a text query denoised by the text stream and the unique transformer (DiffDis, dis)
    POOLED = "pooled"  # a CLIP-style embedding of the pooled mid-block features (clip)
    NONE = "none"  # it does not discriminate (gen)


@dataclass(frozen=True)
class Variant:
    """What a model variant is, declared once: the model builds, the objective trains, the pipeline serves and the
    study compares what this says (ModelConfig.variant names one of VARIANTS)."""

    generates: bool  # trains L_IG and runs the UNet's up path: text -> image
    discriminates: bool  # trains L_ITA and answers image -> text
    answer: Answer  # how it answers image -> text
    tasks: str  # in words, for the model card

    @property
    def text_stream(self) -> bool:
        """Whether it has the dual-stream text modules (the diffused query)."""
        return self.answer is Answer.DIFFUSED


VARIANTS: dict[str, Variant] = {  # the paper's model and the single-task baselines
    "diffdis": Variant(
        True,
        True,
        Answer.DIFFUSED,
        "generates images from text and scores images against text (both directions of one network)",
    ),
    "gen": Variant(True, False, Answer.NONE, "generates images from text only (the single-task generation baseline)"),
    "dis": Variant(
        False, True, Answer.DIFFUSED, "scores images against text only (the single-task discrimination baseline)"
    ),
    "clip": Variant(
        False,
        True,
        Answer.POOLED,
        "scores images against text with a CLIP-style image tower (the dual-encoder baseline)",
    ),
}


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
    attention_head_dim: int = 16  # channels per attention head (used when attention_heads is empty)
    attention_heads: tuple[int, ...] = ()  # heads per level instead, as Stable Diffusion v1 fixes them (8)
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
    # Scale of the clean text query before noising (paper Eq. 6; the paper keeps γ <= 1). The unit query has a
    # per-coordinate std of 1/√D, so γ = √D (19.6 for MiniLM) matches the noise's scale: docs/study.md.
    gamma: float = 1.0
    text_prediction: str = "sample"  # what the text head predicts: "sample" (ê_0, paper) or "epsilon"
    # Ablations of the paper's design (the defaults are the paper's). fusion: the text stream rides along every
    # attention block of the down path and the mid block ("all"), the mid block's only ("mid"), or none, the
    # unique transformer alone reading the query ("none"). query_training: "regression" trains the text branch
    # at t_e = T-1 only (a one-shot regressor from noise; inference then takes one query step).
    fusion: str = "all"
    query_training: str = "diffusion"

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
        if self.fusion not in FUSIONS or self.query_training not in QUERY_TRAINING:
            raise ConfigError(
                f"model.fusion={self.fusion!r}, model.query_training={self.query_training!r}; use a fusion of "
                f"{FUSIONS} and a query_training of {QUERY_TRAINING}"
            )
        if self.gamma <= 0:
            raise ConfigError(f"model.gamma={self.gamma}; it must be positive")
        if self.attention_heads and len(self.attention_heads) != levels:
            raise ConfigError(
                f"model.attention_heads has {len(self.attention_heads)} entries for {levels} levels; give one "
                "per level, or leave it empty to use model.attention_head_dim"
            )
        head_widths = self.attention_heads or (self.attention_head_dim,) * levels
        for width, heads_or_dim in zip(self.block_out_channels, head_widths):
            if width % self.norm_num_groups or width % heads_or_dim:
                raise ConfigError(
                    f"model.block_out_channels entry {width} is not divisible by model.norm_num_groups="
                    f"{self.norm_num_groups} and {heads_or_dim} (model.attention_heads, or model.attention_head_dim "
                    "when that is empty)"
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

    @property
    def declared(self) -> Variant:
        """The declaration of this model's variant."""
        return VARIANTS[self.variant]

    @property
    def one_step_query(self) -> bool:
        """Whether further query steps refine nothing: a pooled query (clip), or one trained at t_e = T-1 only."""
        return self.declared.answer is Answer.POOLED or self.regression_query

    @property
    def regression_query(self) -> bool:
        """The text branch trained at t_e = T-1 only (model.query_training=regression): it reads out in one step."""
        return self.query_training == "regression"

    def heads_per_level(self) -> tuple[int, ...]:
        if self.attention_heads:
            return self.attention_heads
        return tuple(w // self.attention_head_dim for w in self.block_out_channels)


@dataclass(frozen=True)
class TrainConfig:
    """Data, optimisation, the unified objective (paper Eq. 9) and bookkeeping."""

    # Built-in sets (fashion-mnist, shapes, emoji; several joined with "+" are concatenated) or captioned files
    # (specs.py: wds:SHARDS, folder:DIR with metadata.jsonl, csv:FILE), several joined with "+" and mixed by
    # optional weights: "wds:/cc3m/{00000..00331}.tar@3+csv:/extra.csv@1".
    data: str = "fashion-mnist"
    data_dir: str = "/usr/share/datasets/fashion-mnist"
    # Labelled images for in-training validation: "" = the val_size images held out of a built-in training set;
    # or classes:DIR (class_name/xxx.png) or idx:IMAGES,LABELS of your own. Never a test split.
    val_data: str = ""
    # Captions of labelled built-in data (data/vocabulary.py): "varied" = several names per class (ours, the
    # dataset's official ones, WordNet synonyms), singular and plural, in 16 templates; "fixed" = one name per
    # class in 8 templates (models trained before this key existed, and the comparison study).
    captions: str = "varied"
    num_workers: int = 2  # decoding processes per training process (file sources)
    shuffle_buffer: int = 2000  # samples mixed across shards before batching (file sources)
    init_from: str = ""  # a Stable Diffusion folder or .safetensors file: UNet, VAE and CLIP text encoder start here
    trust_pickle: bool = False  # allow init_from to be a pickled .ckpt (loading a pickle can run code)
    val_size: int = 2000  # held out from the training split for in-training validation
    # Classes removed from training entirely, for zero-shot evaluation on classes never seen: their images and
    # every caption that names them (built-in fashion-mnist: names or indices; file sources: captions naming them
    # as a word are skipped and counted). The validation images keep every class.
    holdout_classes: tuple[str, ...] = ()
    shapes_size: int = 20000  # images of the procedural `shapes` source, when it is used
    emoji_skin_tones: bool = True  # train on the skin-tone variants of the `emoji` source too (data/emoji/splits.py)
    batch_size: int = 64  # global: summed over processes, per optimizer step (before accumulation)
    gradient_accumulation: int = 1  # micro-batches per optimizer step; each is batch_size / accumulation
    max_steps: int = 2000
    max_minutes: float = 0.0  # wall-clock cap on the loop (0 = none); the run stops cleanly and saves
    lr_unet: float = 1e-3  # the image branch (pretrained when initialised from Stable Diffusion)
    lr_new: float = 1e-3  # text stream, unique transformer, head, null latent, logit scale
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    # Clip the gradients of L_IG and λ·L_ITA each to grad_clip before adding them, so that one loss's large
    # gradient cannot shrink the other's step (diffdis only; the per-loss norms are logged either way).
    clip_per_loss: bool = False
    max_bad_steps: int = 10  # this many non-finite steps in a row stop the run (each one is skipped and counted)
    lam: float = 1.0  # λ in L = L_IG + λ·L_ITA
    # Min-SNR-γ weighting of L_IG (Hang et al., ICCV 2023): each sample's ε-MSE times min(SNR(t), γ) / SNR(t), so
    # the many nearly clean timesteps stop dominating the gradient. 0 = the plain MSE of the paper's Eq. 4.
    snr_gamma: float = 0.0
    text_dropout: float = 0.1  # generation pass: caption replaced by the empty caption (CFG)
    image_dropout: float = 0.1  # discrimination pass: image replaced by the learned null latent (CFG)
    logit_scale_init: float = 14.285714  # 1/0.07 as in CLIP; learnable, clamped at 100
    # REPA (repa.py): align one UNet feature map ("mid" or "down.N") with a frozen image encoder's features of the
    # clean image (a registered name or a folder: models/image_encoders.py), weight align_weight (0 = off)
    align_weight: float = 0.0
    align_layer: str = "mid"
    align_encoder: str = "efficientnet-lite0"
    ema_decay: float = 0.995  # 0 = no EMA (saves one fp32 copy of the weights)
    mixed_precision: str = "no"  # no, fp16, bf16
    # "fsdp": shard the trained weights, their gradients, AdamW moments and EMA over the processes (torch FSDP2;
    # training/sharding.py), for when a replica's training state does not fit one device; "none": DDP replicas.
    sharding: str = "none"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 25
    validate_every: int = 500  # 0 = only at the end
    final_validation: bool = True  # validate at the last step too (false: short runs skip its cost)
    val_images: int = 500
    val_steps: int = 2  # text-denoising steps for in-training zero-shot validation
    sample_rows: int = 10  # classes (or prompts) in the sample grid of each validation; 0 = no grid
    seed: int = 0

    def validate(self) -> None:
        if self.captions not in CAPTION_STYLES:
            raise ConfigError(f"train.captions={self.captions!r}; use one of {', '.join(CAPTION_STYLES)}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"train.mixed_precision={self.mixed_precision!r}; use no, fp16 or bf16")
        if self.sharding not in ("none", "fsdp"):
            raise ConfigError(f"train.sharding={self.sharding!r}; use none (DDP replicas) or fsdp")
        if self.sharding == "fsdp" and self.mixed_precision == "fp16":
            raise ConfigError(
                "train.sharding=fsdp trains in bf16 or fp32: fp16's loss scaler does not handle sharded gradients; "
                "use train.mixed_precision=bf16 (or no)"
            )
        if self.clip_per_loss and self.mixed_precision == "fp16":
            raise ConfigError(
                "train.clip_per_loss needs the two losses' gradients unscaled; use train.mixed_precision=bf16 or no "
                "with it (fp16's loss scaler works on one backward pass)"
            )
        if self.batch_size < 2:
            raise ConfigError("train.batch_size must be at least 2: the InfoNCE loss needs negatives")
        if self.gradient_accumulation < 1 or self.batch_size % self.gradient_accumulation:
            raise ConfigError(
                f"train.gradient_accumulation={self.gradient_accumulation} must be a positive divisor of "
                f"train.batch_size={self.batch_size}"
            )
        if self.num_workers < 0 or self.shuffle_buffer < 1:
            raise ConfigError("train.num_workers must be >= 0 and train.shuffle_buffer >= 1")
        if self.snr_gamma < 0:
            raise ConfigError(f"train.snr_gamma={self.snr_gamma}; it must be >= 0 (0 turns the weighting off)")
        if self.align_weight < 0:
            raise ConfigError(f"train.align_weight={self.align_weight}; it must be >= 0 (0 turns REPA off)")
        if self.align_layer != "mid" and not re.fullmatch(r"down\.\d+", self.align_layer):
            raise ConfigError(f"train.align_layer={self.align_layer!r}; use 'mid' or 'down.N' (a UNet down block)")
        for name in ("text_dropout", "image_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"train.{name}={getattr(self, name)}; it must lie in [0, 1)")
        if self.max_steps < 1:
            raise ConfigError(f"train.max_steps={self.max_steps}; it must be at least 1")
        if self.max_bad_steps < 1 or self.keep_checkpoints < 1:
            raise ConfigError("train.max_bad_steps and train.keep_checkpoints must be at least 1")
        if self.checkpoint_every < 1:
            raise ConfigError(f"train.checkpoint_every={self.checkpoint_every}; it must be at least 1")
        try:
            self.sources  # noqa: B018 (parsing refuses what cannot be read)
            val_data = parse_spec(self.val_data, LABELLED, "train.val_data") if self.val_data else None
        except SpecError as error:
            raise ConfigError(str(error)) from None
        if val_data and val_data.named:  # validation reads only data held out of training: a named set is a test split
            raise ConfigError(
                f"train.val_data={self.val_data!r}: validation reads only data held out of training, never a test "
                "split (the evaluation sets are test splits). Leave it empty to validate on the train.val_size images "
                "held out of a built-in training set, or give classes:DIR (class_name/xxx.png) or idx:IMAGES,LABELS"
            )

    @cached_property
    def sources(self) -> tuple[DataSpec, ...]:
        """`data`, parsed once."""
        return parse_data(self.data)

    def micro_batch_size(self, processes: int) -> int:
        """Images per process per micro-batch: the global batch split over processes and accumulation steps."""
        parts = processes * self.gradient_accumulation
        if self.batch_size % parts:
            raise ConfigError(
                f"train.batch_size={self.batch_size} does not split into {processes} processes x "
                f"{self.gradient_accumulation} micro-batches; use a multiple of {parts}"
            )
        return self.batch_size // parts


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    version: int = CONFIG_VERSION

    def validate(self) -> Config:
        self.model.validate()
        self.train.validate()
        if FROM_INIT in (self.model.text_encoder, self.model.autoencoder) and not self.train.init_from:
            raise ConfigError(
                "this configuration takes its text encoder and autoencoder from Stable Diffusion weights: pass "
                "--init-from SD_FOLDER_OR_FILE (train.init_from), or set model.text_encoder and model.autoencoder "
                "to folders"
            )
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
        # A config written before train.captions existed was trained on the one-name captions.
        train = _build(TrainConfig, {"captions": "fixed", **data.get("train", {})}, "train")
        return cls(model=model, train=train).validate()

    @classmethod
    def from_json(cls, path: str | Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))


PRESETS: dict[str, Config] = {
    # CPU: tests and the demo. 16x16 greyscale pixels, MiniLM text, attention at 8x8 and 4x4.
    "tiny": Config(),
    # One GPU, trained from scratch: 64x64 RGB pixels, MiniLM text, a 4-level UNet (about 120M parameters).
    "base": Config(
        model=ModelConfig(
            resolution=64,
            image_channels=3,
            block_out_channels=(128, 256, 384, 512),
            attention_levels=(False, True, True, True),
            layers_per_block=2,
            attention_head_dim=64,
            norm_num_groups=32,
            transformer_blocks=4,
            transformer_width=512,
            transformer_head_dim=64,
        ),
        train=TrainConfig(
            batch_size=256,
            max_steps=200_000,
            lr_unet=2e-4,
            lr_new=2e-4,
            warmup_steps=2000,
            ema_decay=0.9999,
            mixed_precision="bf16",
            checkpoint_every=5000,
            validate_every=5000,
            val_steps=4,
        ),
    ),
    # Stable Diffusion v1.x shapes (paper Sec. 4.1): 4-channel latents, CLIP ViT-L/14 text (768-d condition,
    # 77 tokens), UNet 320/640/1280/1280 with 8 heads, the paper's 6-block, 768-wide, 64-d-head unique
    # transformer, 256 px. Start it from weights with train.init_from (or `diffdis train --init-from`), which
    # also takes the exact shapes, VAE and noise schedule from that model.
    "sd": Config(
        model=ModelConfig(
            resolution=256,
            image_channels=3,
            autoencoder=FROM_INIT,
            text_encoder=FROM_INIT,
            text_max_length=77,
            block_out_channels=(320, 640, 1280, 1280),
            attention_levels=(True, True, True, False),
            layers_per_block=2,
            attention_heads=(8, 8, 8, 8),
            norm_num_groups=32,
            transformer_blocks=6,
            transformer_width=768,
            transformer_head_dim=64,
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
        ),
        train=TrainConfig(
            batch_size=256,
            max_steps=100_000,
            lr_unet=1e-5,  # pretrained image branch: small steps
            lr_new=1e-4,
            warmup_steps=1000,
            ema_decay=0.9999,
            mixed_precision="bf16",
            gradient_checkpointing=True,
            checkpoint_every=2000,
            validate_every=2000,
            val_images=1000,
            val_steps=4,
        ),
    ),
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
