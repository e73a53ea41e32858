"""Which prompts a model was never taught (`DiffDisPipeline.unfamiliar`): a prompt less like every training caption
than any evaluation prompt of a known class name is (the threshold is that least similarity, measured on the
model's own vocabulary) is flagged, so that the app and the command line can say its answer is a guess.

Computing it encodes every training caption (a minute for the emoji vocabulary on a CPU), so a model folder may
store it (`familiarity.safetensors`, keyed by the text encoder and the captions; the released models ship it);
a stored one made for another encoder or vocabulary is ignored and computed again."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .data.captions import EVAL_TEMPLATES
from .data.vocabulary import record_captions
from .factory import usual_permissions

FAMILIARITY_NAME = "familiarity.safetensors"


@dataclass
class Familiarity:
    captions: list[str]  # the training captions
    known: torch.Tensor  # (N, D) their unit embeddings
    threshold: float  # the least similarity of a known class name's evaluation prompt to its nearest caption

    @classmethod
    def of(cls, encode_text: Callable[[list[str]], torch.Tensor], vocabulary: dict) -> Familiarity:
        captions = record_captions(vocabulary)
        known = encode_text(captions)
        names = [n for names in vocabulary["classes"].values() for n in names]
        prompts = encode_text([t.format(n) for n in names for t in EVAL_TEMPLATES])
        return cls(captions, known, (prompts @ known.T).max(1).values.min().item())

    def unfamiliar(self, texts: Sequence[str], embeddings: torch.Tensor) -> list[tuple[str, str, float]]:
        """(text, nearest training caption, cosine) for each of `texts` (embedded as `embeddings`, (N, D)) below
        the threshold."""
        best = (embeddings @ self.known.T).max(1)
        return [
            (text, self.captions[i], value)
            for text, value, i in zip(texts, best.values.tolist(), best.indices.tolist())
            if value < self.threshold
        ]


def key(text_encoder, captions: list[str]) -> str:
    text = "\n".join([getattr(text_encoder, "identity", type(text_encoder).__name__), *captions])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def save_familiarity(familiarity: Familiarity, text_encoder, folder: str | Path) -> None:
    """Store `familiarity` in a model folder, keyed by `text_encoder` and the captions."""
    tensors = {"known": familiarity.known.float().cpu().contiguous(), "threshold": torch.tensor(familiarity.threshold)}
    save_file(tensors, Path(folder) / FAMILIARITY_NAME, metadata={"key": key(text_encoder, familiarity.captions)})
    usual_permissions(Path(folder))


def load_familiarity(folder: Path, vocabulary: dict | None, text_encoder, device) -> Familiarity | None:
    """The familiarity stored in `folder` when it was made by `text_encoder` for `vocabulary`'s captions; else None."""
    file = folder / FAMILIARITY_NAME
    if vocabulary is None or not file.is_file():
        return None
    captions = record_captions(vocabulary)
    with safe_open(str(file), "pt") as stored:
        if (stored.metadata() or {}).get("key") != key(text_encoder, captions):
            return None
        known, threshold = stored.get_tensor("known"), stored.get_tensor("threshold").item()
    return Familiarity(captions, known.to(device), threshold)
