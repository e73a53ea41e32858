"""Shared fixtures: small configs and pipelines built on the fly (nothing is downloaded); shared helpers that are
not fixtures are in helpers.py."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import SMALL, write_idx  # noqa: E402

from diffdis import DiffDisPipeline, preset  # noqa: E402


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

    folder = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 160), ("t10k", 40)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return folder
