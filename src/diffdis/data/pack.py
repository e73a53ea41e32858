"""`diffdis pack`: write WebDataset shards (img2dataset layout: KEY.png or KEY.jpg, KEY.txt, KEY.json) from a
built-in set, an IDX pair or an image folder, so that any data can take the streaming path used at scale."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from .captions import TRAIN_TEMPLATES, caption
from .datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist, load_idx_pair
from .files import image_folder
from .shapes import load_shapes

Sample = tuple[bytes, str, str, dict]  # encoded image, its extension, caption, extra metadata


def write_shards(samples: Iterable[Sample], out: str | Path, shard_size: int = 1000) -> list[Path]:
    """Write samples into out/00000.tar, out/00001.tar, ... (`shard_size` samples each); returns the shards.
    Each shard is written under a temporary name and renamed when complete."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    tar = None
    for index, (image, ext, text, meta) in enumerate(samples):
        if index % shard_size == 0:
            if tar is not None:
                _close(tar, shards[-1])
            shards.append(out / f"{len(shards):05d}.tar")
            tar = tarfile.open(shards[-1].with_suffix(".tar.tmp"), "w")
        key = f"{index:09d}"
        _add(tar, f"{key}.{ext}", image)
        _add(tar, f"{key}.txt", text.encode("utf-8"))
        _add(tar, f"{key}.json", json.dumps({"key": key, "caption": text, **meta}).encode("utf-8"))
    if tar is None:
        raise ValueError("nothing to pack: the source has no samples")
    _close(tar, shards[-1])
    return shards


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def _close(tar: tarfile.TarFile, final: Path) -> None:
    tar.close()
    final.with_suffix(".tar.tmp").replace(final)


def _png(array: np.ndarray) -> bytes:
    """(C, H, W) uint8 -> PNG bytes."""
    image = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _labelled(images, labels, names, seed: int, limit: int | None) -> Iterator[Sample]:
    """One caption per image, a training template drawn at random (seeded) for its class."""
    rng = np.random.default_rng(seed)
    n = len(labels) if limit is None else min(limit, len(labels))
    for i in range(n):
        label = int(labels[i])
        text = caption(names[label], TRAIN_TEMPLATES[int(rng.integers(len(TRAIN_TEMPLATES)))])
        yield _png(images[i].numpy()), "png", text, {"label": label, "class_name": names[label]}


def pack_samples(
    source: str,
    resolution: int = 28,
    limit: int | None = None,
    seed: int = 0,
    class_names: list[str] | None = None,
    data_dir: str = FASHION_MNIST_DIR,
) -> Iterator[Sample]:
    """Samples of `source`: fashion-mnist[:train|test], shapes (procedural train split; needs `limit`),
    idx:IMAGES,LABELS (with `class_names`, else the label numbers), or folder:DIR with metadata.jsonl."""
    if source.startswith("fashion-mnist"):
        split = source.partition(":")[2] or "train"
        data = load_fashion_mnist(split, resolution, 1, data_dir)
        return _labelled(data.images, data.labels, FASHION_MNIST_CLASSES, seed, limit)
    if source == "shapes":
        if not limit:
            raise ValueError("packing shapes needs --num N: the procedural set has no fixed size")
        shapes = load_shapes("train", limit, resolution, seed)
        return ((_png(im.numpy()), "png", text, {}) for im, text in zip(shapes.images, shapes.captions))
    if source.startswith("idx:"):
        images_path, _, labels_path = source[4:].partition(",")
        images, labels = load_idx_pair(Path(images_path), Path(labels_path), resolution, 1)
        names = class_names or [str(k) for k in range(int(labels.max()) + 1)]
        if len(names) <= int(labels.max()):
            raise ValueError(f"{len(names)} class names for labels up to {int(labels.max())}")
        return _labelled(images, labels, names, seed, limit)
    if source.startswith("folder:"):
        items = image_folder(source[7:]).items[:limit]
        return ((path.read_bytes(), path.suffix.lower().lstrip("."), text, {}) for path, text in items)
    raise ValueError(f"cannot pack {source!r}; use fashion-mnist[:train|test], shapes, idx:IMAGES,LABELS or folder:DIR")
