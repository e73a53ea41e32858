"""Image sets held in memory at the training resolution: labelled sets (zero-shot evaluation), captioned sets
(training), and the built-in Fashion-MNIST loader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .idx import read_idx
from .transforms import image_to_uint8

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "t-shirt",
    "pair of trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class LabelledImages:
    """images (N, C, R, R) uint8 at the model's resolution, labels (N,) int64, and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray | torch.Tensor) -> LabelledImages:
        indices = torch.as_tensor(indices, dtype=torch.long)
        return LabelledImages(self.images[indices], self.labels[indices], self.class_names)


@dataclass(frozen=True)
class CaptionedImages:
    """Training images (N, C, R, R) uint8. Image i is captioned, at each draw, by a random choice from
    caption_sets[caption_ids[i]]: all templates of its class for labelled data, its one caption for
    procedural data. Sets from different sources concatenate."""

    images: torch.Tensor
    caption_ids: torch.Tensor  # (N,) int64
    caption_sets: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.caption_ids)

    def all_captions(self) -> list[str]:
        """Every caption a draw can give, each once."""
        return list(dict.fromkeys(c for choices in self.caption_sets for c in choices))

    def captions(self, indices: np.ndarray, rng: np.random.Generator) -> list[str]:
        sets = [self.caption_sets[int(k)] for k in self.caption_ids[indices]]
        picks = rng.integers(np.array([len(choices) for choices in sets]))
        return [choices[int(j)] for choices, j in zip(sets, picks)]

    @classmethod
    def from_labelled(cls, data: LabelledImages, class_captions: tuple[tuple[str, ...], ...]) -> CaptionedImages:
        """Each image captioned by a draw from its class's captions (`class_captions[label]`)."""
        if len(class_captions) != len(data.class_names):
            raise ValueError(f"{len(class_captions)} caption sets for {len(data.class_names)} classes")
        return cls(data.images, data.labels, tuple(class_captions))

    @classmethod
    def from_captions(cls, images: torch.Tensor, captions: list[str]) -> CaptionedImages:
        unique = list(dict.fromkeys(captions))
        index = {text: i for i, text in enumerate(unique)}
        return cls(images, torch.tensor([index[t] for t in captions]), tuple((t,) for t in unique))

    @staticmethod
    def concatenate(parts: list[CaptionedImages]) -> CaptionedImages:
        if len({p.images.shape[1:] for p in parts}) != 1:
            raise ValueError(f"cannot mix image sets of shapes {[tuple(p.images.shape[1:]) for p in parts]}")
        offsets = np.cumsum([0] + [len(p.caption_sets) for p in parts[:-1]])
        return CaptionedImages(
            torch.cat([p.images for p in parts]),
            torch.cat([p.caption_ids + int(o) for p, o in zip(parts, offsets)]),
            tuple(s for p in parts for s in p.caption_sets),
        )


def find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{stem}[.gz] not found in {folder}. Install the Debian package `dataset-fashion-mnist` "
        "(apt-get install dataset-fashion-mnist) or pass the folder holding the IDX files (train.data_dir=...)."
    )


def load_idx_pair(
    images_path: Path, labels_path: Path, resolution: int, channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """IDX images + labels -> uint8 tensor at `resolution` (resized as the pipeline resizes) and labels."""
    raw = read_idx(images_path)  # (N, H, W) uint8
    labels = read_idx(labels_path).astype(np.int64)
    if raw.ndim != 3 or len(raw) != len(labels):
        raise ValueError(f"{images_path} and {labels_path} do not form an image/label pair")
    if raw.shape[1] == raw.shape[2] == resolution and channels == 1:
        images = raw[:, None].copy()
    else:
        images = np.stack([image_to_uint8(Image.fromarray(a), resolution, channels) for a in raw])
    return torch.from_numpy(images), torch.from_numpy(labels)


def load_fashion_mnist(
    split: str, resolution: int, channels: int = 1, root: str | Path = FASHION_MNIST_DIR
) -> LabelledImages:
    """The real Fashion-MNIST split ("train": 60k, "test": 10k)."""
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    root = Path(root)
    images, labels = load_idx_pair(*(find_idx(root, stem) for stem in FASHION_MNIST_FILES[split]), resolution, channels)
    return LabelledImages(images, labels, FASHION_MNIST_CLASSES)


def fixed_subset_indices(total: int, size: int, seed: int = 0) -> np.ndarray:
    """The positions fixed_subset keeps, ascending. A smaller subset of the same set is part of a larger one
    (both are the first entries of one seeded permutation), so figures on both can be paired image by image."""
    if size >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).permutation(total)[:size])


def fixed_subset(data: LabelledImages, size: int, seed: int = 0) -> LabelledImages:
    """The same `size` images every time (a seeded permutation), for comparable sweeps; the whole set, in its own
    order, when it has no more than `size` images."""
    if size >= len(data):
        return data
    return data.subset(fixed_subset_indices(len(data), size, seed))


def train_val_split(data: LabelledImages, val_size: int, seed: int) -> tuple[LabelledImages, LabelledImages]:
    """A fixed random hold-out from the training split for validation (the test split is never touched)."""
    if not 0 < val_size < len(data):
        raise ValueError(f"val_size={val_size} must lie between 1 and {len(data) - 1}")
    order = np.random.default_rng(seed).permutation(len(data))
    return data.subset(order[val_size:]), data.subset(order[:val_size])
