"""The locked-image baseline `lit` (after LiT, Zhai et al., CVPR 2022, which locks a pretrained image tower): a
frozen pretrained image encoder's pooled features, and one trained linear map into the frozen text encoder's
space. It is what to pick for classification alone at this scale, and the bar every joint model is read against.

Training takes seconds: the encoder's features of the training images are cached (image_features.py), and the map
is fitted by full-batch AdamW on a softmax over the training caption sets: an image's class is its caption set
(a concept's templates and keywords), represented by the normalised mean of its captions' embeddings, so nothing
of a held-out concept enters. Zero-shot then works as for DiffDis: cosine of the mapped image feature against
candidate class embeddings. It answers where evaluation asks a DiffDisPipeline (`encode_image`, `encode_text`,
`class_embeddings`, `scores`, `retrieve`, `vocabulary`, `config`), so the emoji evaluation and `diffdis evaluate`
score both the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .config import Config
from .data.datasets import CaptionedImages
from .data.emoji import EVAL_TEMPLATES
from .data.emoji.packages import cache_root
from .image_features import cached_features
from .metrics import recall_at_k, relevance_matrix
from .models.encoders import TextEncoder, load_text_encoder, template_embeddings
from .models.image_encoders import FrozenImageEncoder, image_encoder
from .pipeline import RetrievalResult

LIT_CONFIG = "lit.json"
LIT_WEIGHTS = "projection.safetensors"
CACHED_FROM = 64  # images in one encode_image call from which their features are cached on disk


@dataclass(frozen=True)
class LitSettings:
    steps: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-4
    logit_scale_init: float = 14.285714  # learnable, as in CLIP
    seed: int = 0


class LockedImageText:
    """A frozen image encoder + a linear map (C -> D) + a frozen text encoder; images are uint8 or [-1, 1]."""

    def __init__(
        self,
        encoder: FrozenImageEncoder,
        text_encoder: TextEncoder,
        projection: nn.Linear,
        config: Config,
        vocabulary: dict | None = None,
    ):
        self.image_encoder, self.text_encoder, self.projection = encoder, text_encoder, projection
        self.config, self.vocabulary = config, vocabulary
        self._classes: dict[tuple, torch.Tensor] = {}

    @classmethod
    def fit(
        cls,
        encoder: FrozenImageEncoder,
        config: Config,
        data: CaptionedImages,
        sharp: torch.Tensor | None = None,
        vocabulary: dict | None = None,
        settings: LitSettings | None = None,
        log=print,
    ) -> LockedImageText:
        """Fit the map on `data`'s training images (their features from `sharp`, the same images from a sharper
        source, when given) against their caption sets."""
        settings = settings or LitSettings()
        text = load_text_encoder(config.model.text_encoder, config.model.text_max_length)
        text.preload(data.all_captions(), cache_root() / "text")  # the same file training reads
        features = cached_features(encoder, data.images if sharp is None else sharp, log=log).pooled  # (N, C)
        prototypes = F.normalize(
            torch.stack([text.encode_cached(list(s))[1].mean(0) for s in data.caption_sets]), dim=-1
        )
        torch.manual_seed(settings.seed)
        projection = nn.Linear(features.shape[1], prototypes.shape[1])
        scale = nn.Parameter(torch.tensor(settings.logit_scale_init).log())
        optimizer = torch.optim.AdamW(
            [*projection.parameters(), scale], settings.lr, weight_decay=settings.weight_decay
        )
        for _ in range(settings.steps):
            logits = scale.exp() * F.normalize(projection(features), dim=-1) @ prototypes.T  # (N, K)
            loss = F.cross_entropy(logits, data.caption_ids)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        log(f"lit: {len(features)} images, {len(prototypes)} caption sets, final loss {loss.item():.3f}")
        return cls(encoder, text, projection.requires_grad_(False), config, vocabulary)

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor, **ignored) -> torch.Tensor:
        """(N, C, R, R) uint8 or [-1, 1] -> (N, D) unit vectors in the text space (sampler settings of DiffDis's
        query are accepted and have no meaning here)."""
        if images.dtype != torch.uint8:
            images = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        if len(images) >= CACHED_FROM:  # an evaluation set: its features are kept for the next model
            pooled = cached_features(self.image_encoder, images.cpu(), log=lambda _: None).pooled
        else:
            pooled = self.image_encoder(images).mean(dim=(2, 3))
        return F.normalize(self.projection(pooled), dim=-1)

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        return self.text_encoder.queries(texts, batch_size)

    def class_embeddings(self, class_names: Sequence[str], templates: Sequence[str] | None = None) -> torch.Tensor:
        """(K, D): per class, the normalised mean of its normalised template embeddings (as the pipeline's)."""
        templates = tuple(templates or EVAL_TEMPLATES)
        key = (tuple(class_names), templates)
        if key not in self._classes:
            self._classes[key] = template_embeddings(self.encode_text, class_names, templates)
        return self._classes[key]

    def scores(
        self, images: torch.Tensor, class_names: Sequence[str], templates: Sequence[str] | None = None, **ignored
    ) -> torch.Tensor:
        """(N, K) cosines of each image against each class (the pipeline's `scores`, as the suite calls it)."""
        return self.encode_image(images) @ self.class_embeddings(class_names, templates).T

    def retrieve(
        self, images: torch.Tensor, texts: Sequence[str], relevance: torch.Tensor | None = None, **ignored
    ) -> RetrievalResult:
        """Image<->text retrieval as the pipeline's `retrieve`: similarities and R@1/5/10 both ways."""
        relevance = relevance_matrix(relevance, len(images), len(texts))
        similarity = self.encode_image(images) @ self.encode_text(texts).T  # (N_images, N_texts)
        return RetrievalResult(similarity, recall_at_k(similarity, relevance))

    def classify(self, images: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """(N,) indices into `class_names`."""
        return self.scores(images, class_names).argmax(1)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.projection.state_dict().items()}, str(folder / LIT_WEIGHTS))
        record = {
            "image_encoder": self.image_encoder.spec.name,
            "input_size": self.image_encoder.input_size,
            "encoder_weights": self.image_encoder.spec.weights,
            "encoder_licence": self.image_encoder.spec.licence,
            "config": self.config.to_dict(),
            "vocabulary": self.vocabulary,
        }
        (folder / LIT_CONFIG).write_text(json.dumps(record, indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> LockedImageText:
        folder = Path(folder)
        record = json.loads((folder / LIT_CONFIG).read_text())
        config = Config.from_dict(record["config"])
        weights = load_file(str(folder / LIT_WEIGHTS))
        projection = nn.Linear(weights["weight"].shape[1], weights["weight"].shape[0]).requires_grad_(False)
        projection.load_state_dict(weights)
        text = load_text_encoder(config.model.text_encoder, config.model.text_max_length)
        encoder = image_encoder(record["image_encoder"], record["input_size"])
        return cls(encoder, text, projection, config, record.get("vocabulary"))
