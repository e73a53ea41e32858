"""Writing WebDataset shards (img2dataset layout: KEY.png or KEY.jpg, KEY.txt, KEY.json):

- `diffdis pack`: from a built-in set, an IDX pair or an image folder, so that any data can take the streaming
  path used at scale;
- `diffdis encode`: a copy of file sources with each sample's VAE latent moments (KEY.latent.npy) and text
  encoding (KEY.text.npy = c, KEY.query.npy = e) precomputed by a model, so training skips both encoders.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..specs import parse_spec
from .captions import TRAIN_TEMPLATES, caption
from .datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist, load_idx_pair
from .files import image_folder
from .shapes import load_shapes
from .vocabulary import fashion_mnist_captions

Sample = dict[str, bytes]  # member extension (png, txt, json, latent.npy, ...) -> bytes


def write_shards(samples: Iterable[Sample], out: str | Path, shard_size: int = 1000) -> list[Path]:
    """Write samples into out/00000.tar, out/00001.tar, ... (`shard_size` samples each); returns the shards.
    Each shard is written under a temporary name and renamed when complete."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    tar = None
    for index, members in enumerate(samples):
        if index % shard_size == 0:
            if tar is not None:
                _close(tar, shards[-1])
            shards.append(out / f"{len(shards):05d}.tar")
            tar = tarfile.open(shards[-1].with_suffix(".tar.tmp"), "w")
        for ext, data in members.items():
            _add(tar, f"{index:09d}.{ext}", data)
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


def _sample(image: bytes, ext: str, text: str, **meta) -> Sample:
    return {ext: image, "txt": text.encode("utf-8"), "json": json.dumps({"caption": text, **meta}).encode("utf-8")}


def _labelled(images, labels, names, class_captions, seed: int, limit: int | None) -> Iterator[Sample]:
    """One caption per image, drawn at random (seeded) from its class's captions."""
    rng = np.random.default_rng(seed)
    n = len(labels) if limit is None else min(limit, len(labels))
    for i in range(n):
        label = int(labels[i])
        choices = class_captions[label]
        text = choices[int(rng.integers(len(choices)))]
        yield _sample(_png(images[i].numpy()), "png", text, label=label, class_name=names[label])


def pack_samples(
    source: str,
    resolution: int = 28,
    limit: int | None = None,
    seed: int = 0,
    class_names: list[str] | None = None,
    data_dir: str = FASHION_MNIST_DIR,
) -> Iterator[Sample]:
    """Samples of `source`: fashion-mnist[:train|test] (captions as train.captions=varied), shapes (procedural
    train split; needs `limit`), idx:IMAGES,LABELS (with `class_names`, else the label numbers), or a captioned
    folder:DIR (metadata.jsonl)."""
    spec = parse_spec(source, what="pack")
    if spec.kind == "fashion-mnist":
        data = load_fashion_mnist(spec.target or "train", resolution, 1, data_dir)
        captions = fashion_mnist_captions("varied")
        return _labelled(data.images, data.labels, FASHION_MNIST_CLASSES, captions, seed, limit)
    if spec.kind == "shapes" and not spec.target:
        if not limit:
            raise ValueError("packing shapes needs --num N: the procedural set has no fixed size")
        shapes = load_shapes("train", limit, resolution, seed)
        return (_sample(_png(im.numpy()), "png", text) for im, text in zip(shapes.images, shapes.captions))
    if spec.kind == "idx":
        images, labels = load_idx_pair(*map(Path, spec.paths), resolution, 1)
        names = class_names or [str(k) for k in range(int(labels.max()) + 1)]
        if len(names) <= int(labels.max()):
            raise ValueError(f"{len(names)} class names for labels up to {int(labels.max())}")
        captions = [tuple(caption(name, t) for t in TRAIN_TEMPLATES) for name in names]
        return _labelled(images, labels, names, captions, seed, limit)
    if spec.kind == "folder":
        items = image_folder(spec.target).items[:limit]
        return (_sample(path.read_bytes(), path.suffix.lower().lstrip("."), text) for path, text in items)
    raise ValueError(
        f"cannot pack {source!r}; use fashion-mnist[:train|test], shapes, idx:IMAGES,LABELS or folder:DIR "
        "(images with a metadata.jsonl)"
    )
