"""A frozen image encoder's features of a whole image set, computed once per machine and cached on disk.

EfficientNet-Lite0's features cost about 45 ms per image at 224 px on 2 CPU cores, against about 6 ms for an
image's share of a whole training step, so REPA's targets and the `lit` baseline read them from a cache: one
safetensors file per (encoder and its input size, exact image bytes, pooled only or with the maps), its name a
digest of all three. A file whose recorded key differs from
the request (a renamed file, a changed encoder or image set) or whose features fail their checksum is not used:
it is computed again and replaced.

Built-in sets give the encoder their sharpest source: the emoji drawings at 64 px (rendered from the 64-px art
and the SVGs), not the 16-px training pixels blown up (`training_sources`)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import Config
from .data.builtin import builtin
from .data.emoji import EmojiData
from .data.emoji.packages import cache_root
from .models.image_encoders import FrozenImageEncoder

CHUNK = 32  # images per encoder call
SHARP_EMOJI = 64  # the emoji drawings' source resolution for an image encoder


@dataclass(frozen=True)
class ImageFeatures:
    pooled: torch.Tensor  # (N, C) float32: the spatial mean of the feature map
    maps: torch.Tensor | None  # (N, C, h, w) float16: the whole map (REPA's targets), when asked for


def features_root() -> Path:
    return cache_root() / "features"


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()


def cached_features(
    encoder: FrozenImageEncoder,
    images: torch.Tensor,  # (N, C, R, R) uint8
    maps: bool = False,
    root: str | Path | None = None,
    log=print,
) -> ImageFeatures:
    """`encoder`'s features of `images`, from the cache when its key and checksum match, else computed and
    cached."""
    key = {"encoder": encoder.identity, "images": _digest(images), "maps": str(maps)}
    path = _path(root, key)
    found = _read(path, key)
    if found is None and not maps:  # the pooled features of a file kept with its maps serve as well
        with_maps = {**key, "maps": str(True)}
        found = _read(_path(root, with_maps), with_maps)
    if found is not None:
        return ImageFeatures(found.pooled, found.maps if maps else None)
    start = time.perf_counter()
    pooled, kept = [], []
    for i in range(0, len(images), CHUNK):
        feature_map = encoder(images[i : i + CHUNK]).float().cpu()  # (b, C, h, w)
        pooled.append(feature_map.mean(dim=(2, 3)))
        if maps:
            kept.append(feature_map.half())
    result = ImageFeatures(torch.cat(pooled), torch.cat(kept) if maps else None)
    tensors = {"pooled": result.pooled, **({"maps": result.maps} if maps else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata={**key, "checksum": _checksum(tensors)})
    partial.replace(path)
    log(f"features: {len(images)} images through {encoder.spec.name} in {time.perf_counter() - start:.0f} s")
    return result


def _path(root: str | Path | None, key: dict[str, str]) -> Path:
    name = hashlib.sha256("\n".join(key.values()).encode()).hexdigest()[:24]
    return Path(root or features_root()) / f"{name}.safetensors"


def _checksum(tensors: dict[str, torch.Tensor]) -> str:
    return hashlib.sha256("".join(_digest(tensors[k]) for k in sorted(tensors)).encode()).hexdigest()


def _read(path: Path, key: dict[str, str]) -> ImageFeatures | None:
    """The cached features if the file exists, was made for `key` and is intact; else None (recomputed)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError):
        return None
    if any(metadata.get(k) != v for k, v in key.items()) or metadata.get("checksum") != _checksum(tensors):
        return None
    return ImageFeatures(tensors["pooled"], tensors.get("maps"))


def emoji_sharp(rows: list[int]) -> torch.Tensor:
    """Cache rows of the emoji set from its sharp source, (N, 3, 64, 64) uint8."""
    return torch.from_numpy(EmojiData.load(SHARP_EMOJI).images[rows])


def training_sources(config: Config) -> list[torch.Tensor]:
    """The training images of `train.data`'s built-in sources, in training-set order, each at its sharpest
    source: the emoji drawings at 64 px, the others as trained (they have no sharper source)."""
    images = []
    for source in config.train.sources:
        if source.kind == "emoji":
            emoji = EmojiData.load(config.model.resolution)
            images.append(emoji_sharp(emoji.trained_rows(config.train.emoji_skin_tones)))
        else:
            images.append(builtin(source.kind).load(config)[0].images)
    return images


def training_features(config: Config, encoder: FrozenImageEncoder, log=print) -> ImageFeatures:
    """REPA's targets for every training image of a built-in `train.data`, in training-set order."""
    parts = [cached_features(encoder, images, maps=True, log=log) for images in training_sources(config)]
    return ImageFeatures(torch.cat([p.pooled for p in parts]), torch.cat([p.maps for p in parts]))
