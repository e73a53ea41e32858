"""Shared fixtures: small configs and pipelines built on the fly (nothing is downloaded)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from diffdis import DiffDisPipeline, preset  # noqa: E402

SMALL = [
    "model.block_out_channels=16,32,32",
    "model.attention_head_dim=8",
    "model.transformer_width=32",
    "model.transformer_head_dim=16",
    "model.text_max_length=16",
]


def run_overrides(idx_dir, *extra: str) -> list[str]:
    """A small, fast training run on the stand-in Fashion-MNIST folder."""
    return SMALL + [
        f"train.data_dir={idx_dir}",
        "train.val_size=32",
        "train.batch_size=16",
        "train.validate_every=0",
        "train.val_images=16",
        *extra,
    ]


@pytest.fixture(scope="session")
def small_config():
    return preset("tiny", SMALL)


@pytest.fixture()
def small_pipeline(small_config):
    torch.manual_seed(0)
    return DiffDisPipeline.from_config(small_config)


@pytest.fixture(scope="session")
def text_encoder(small_config):
    from diffdis.models.encoders import load_text_encoder

    return load_text_encoder("minilm", small_config.model.text_max_length)


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory):
    """A stand-in for the Fashion-MNIST folder: random 28x28 images in the real file layout."""
    import numpy as np
    from test_data import _write_idx

    folder = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 160), ("t10k", 40)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return folder
