"""The run folder's config.json across resumed segments: which changes a resume may carry, which it refuses.

A resumed run continues from weights, optimizer moments and a data position that were made under the saved
config. A change that alters the network's shapes or what its weights mean (any model key, the data, the
encoders, the batch, the seed behind every random draw) is refused before anything is written, naming each key
and both values. Every other change (how long, how often, how it is logged, checked or optimised) is accepted
and recorded with the step from which it applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config, ConfigError

# Train keys that change what the checkpoint's weights, EMA or data position mean (model keys always do).
REFUSED_TRAIN_KEYS = (
    "data",
    "data_dir",
    "captions",  # the words the model is taught
    "val_size",  # the split between training and validation images
    "shapes_size",
    "seed",  # every random draw of every step, and the data order
    "batch_size",
    "gradient_accumulation",
    "shuffle_buffer",
    "holdout_classes",
    "emoji_skin_tones",  # the emoji training images
    "align_weight",  # REPA: whether a projector exists, and the loss it is trained on
    "align_layer",  # the projector's input width
    "align_encoder",  # the projector's output width and its targets
    "init_from",  # the frozen text encoder and autoencoder come from there
    "ema_decay",  # the exported weights are this average
)


class ConfigChangeError(ConfigError):
    """A resume whose config differs from the run's in a way the checkpoints cannot follow."""


def _flat(config: Config) -> dict[str, Any]:
    return {f"{section}.{k}": v for section in ("model", "train") for k, v in config.to_dict()[section].items()}


def config_differences(saved: Config, new: Config) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for every key whose value differs."""
    before, after = _flat(saved), _flat(new)
    return [(k, before[k], after[k]) for k in before if before[k] != after[k]]


def refused(key: str) -> bool:
    section, _, name = key.partition(".")
    return section == "model" or name in REFUSED_TRAIN_KEYS


def check_resume_config(run_dir: Path, config: Config) -> list[tuple[str, Any, Any]]:
    """The accepted differences between the run's saved config and `config` (empty for a new run). Raises
    ConfigChangeError, before anything is written, when a difference would make the checkpoints mean something
    else. Only called when the run has checkpoints: a run folder without any can start over with any config."""
    path = run_dir / "config.json"
    if not path.exists():
        return []
    try:
        saved = Config.from_json(path)
    except ConfigError as error:
        raise ConfigChangeError(f"{path} cannot be read by this version ({error}); train into a new folder") from None
    changes = config_differences(saved, config)
    bad = [c for c in changes if refused(c[0])]
    if bad:
        listed = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in bad)
        raise ConfigChangeError(
            f"{run_dir} holds checkpoints trained with another configuration ({listed}). These settings change the "
            "model's shapes or what its weights mean, so the run cannot resume with them: use the run's own values "
            f"(see {path}) to resume, or pass a new --out folder to train afresh. The checkpoints were left as they are"
        )
    return changes
