"""The emoji figures: zero-shot on concepts no training caption named, the same among every concept name
(generalised), caption retrieval, seen concepts in a style never trained on, and generation judged by a
classifier that is not the model under test.

Every set is a held-out split of data/emoji/splits.py. The validation figures (`split="val"`) are the ones to
choose settings on; the test figures are read once per reported result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import DEFAULT_GENERATION_STEPS, DEFAULT_GUIDANCE, DEFAULT_QUERY_GUIDANCE, DEFAULT_QUERY_STEPS
from ..data.datasets import LabelledImages, fixed_subset
from ..data.emoji import EVAL_TEMPLATES, GENERATION_TEMPLATE, STYLES, UNSEEN_STYLE, EmojiData
from ..data.imagenet import imagenet_match
from ..data.transforms import uint8_to_model
from ..metrics import recall_at_k
from ..models.image_encoders import IMAGE_ENCODERS
from .fid import InceptionFeatures, fid_kid
from .judge import Judge, accuracy, generation_settings, pil_to_uint8, train_judge
from .zero_shot import unseen_class_accuracy

DEFAULT_QUERY = {"num_inference_steps": DEFAULT_QUERY_STEPS, "guidance_scale": DEFAULT_QUERY_GUIDANCE, "seed": 0}
JUDGE_TEST_FRACTION = 0.15  # real drawings the judge never trains on, for its own accuracy


def queries(pipe, data: LabelledImages, query: dict) -> torch.Tensor:
    """The unit text queries (N, D) the model answers for each image."""
    return pipe.encode_image(uint8_to_model(data.images), **query).cpu()  # (N, D) unit queries


def classification(queries: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor) -> dict:
    """Top-1 and top-5 of unit queries (N, D) against class embeddings (K, D), with each image's top-1
    correctness (for paired comparisons on the same images)."""
    scores = queries @ classes.T  # (N, K)
    k = scores.shape[1]
    correct = scores.argmax(1) == labels
    top5 = (scores.topk(min(5, k), dim=1).indices == labels[:, None]).any(1).float().mean().item()
    return {
        "top1": 100.0 * correct.float().mean().item(),
        "top5": 100.0 * top5,
        "correct": correct.int().tolist(),
        "chance_top1": 100.0 / k,
        "chance_top5": 100.0 * min(5, k) / k,
        "images": len(labels),
        "classes": k,
    }


class TextCache:
    """Class and caption embeddings of a frozen text encoder, kept across the models that share it (a study's
    runs): the first model asked computes them, the others read them back. Keyed by the encoder's name, so
    models with different text encoders never share an entry."""

    def __init__(self) -> None:
        self._kept: dict[tuple, torch.Tensor] = {}

    def classes(self, pipe, names: tuple[str, ...]) -> torch.Tensor:
        """(K, D) class embeddings averaged over EVAL_TEMPLATES."""
        key = (pipe.config.model.text_encoder, "classes", tuple(names))
        if key not in self._kept:
            self._kept[key] = pipe.class_embeddings(names, EVAL_TEMPLATES).cpu()
        return self._kept[key]

    def captions(self, pipe, captions: list[str]) -> torch.Tensor:
        """(N, D) unit caption embeddings."""
        key = (pipe.config.model.text_encoder, "captions", tuple(captions))
        if key not in self._kept:
            self._kept[key] = pipe.encode_text(captions).cpu()
        return self._kept[key]


def _retrieval(pipe, q: torch.Tensor, data: LabelledImages, texts: TextCache) -> dict:
    """Images against one caption per concept (the first evaluation template); an image's relevant caption is
    its concept's, and names are unique per concept, so paired recall is meaningful."""
    captions = [EVAL_TEMPLATES[0].format(n) for n in data.class_names]
    similarity = q @ texts.captions(pipe, captions).T
    relevance = data.labels[:, None] == torch.arange(len(captions))[None]
    return {
        "captions": f"'{EVAL_TEMPLATES[0]}' per concept",
        "texts": len(captions),
        **recall_at_k(similarity, relevance),
    }


def emoji_zero_shot(
    pipe,
    emoji: EmojiData,
    split: str = "val",
    query: dict | None = None,
    texts: TextCache | None = None,
    images: int | None = None,
) -> dict:
    """The discrimination figures on the unseen concepts of `split` ("val" or "test"); with "test" also the
    unseen style (seen concepts drawn by OpenMoji, among every seen concept). `texts` shares the candidates'
    embeddings across calls (and models); `images` reads a fixed subset of each set (quick checks only)."""
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r}; use 'val' (to choose settings) or 'test' (to report)")
    emoji.check_split(pipe.vocabulary)
    query = {**DEFAULT_QUERY, **(query or {})}
    texts = texts or TextCache()
    unseen = _subset(emoji.eval_set("emoji-unseen" if split == "test" else "emoji-unseen-val"), images)
    seen = _subset(emoji.eval_set("emoji-seen-val"), images)
    q_unseen, q_seen = queries(pipe, unseen, query), queries(pipe, seen, query)
    unseen_classes = texts.classes(pipe, unseen.class_names)
    out = {
        "split": split,
        "query": query,
        "templates": list(EVAL_TEMPLATES),
        "unseen": {
            "setting": "concepts no training caption named, drawn in the training styles; among those concepts",
            **classification(q_unseen, unseen_classes, unseen.labels),
        },
        **near_and_far(emoji, unseen, q_unseen, unseen_classes),
        **encoder_seen(unseen, q_unseen, unseen_classes, pretrained_image_encoder(pipe)),
        "unseen_retrieval": _retrieval(pipe, q_unseen, unseen, texts),
        "seen_heldout_drawings": {
            "setting": "held-out drawings of seen concepts, training styles; among those concepts",
            **classification(q_seen, texts.classes(pipe, seen.class_names), seen.labels),
        },
    }
    out["generalized"] = _generalized(pipe, emoji, unseen, seen, torch.cat([q_unseen, q_seen]), texts)
    if split == "test":
        style = _subset(emoji.eval_set("emoji-style"), images)
        q_style = queries(pipe, style, query)
        out["unseen_style"] = {
            "setting": f"seen concepts drawn by {UNSEEN_STYLE} (a style never trained on); among every seen concept",
            **classification(q_style, texts.classes(pipe, style.class_names), style.labels),
            "retrieval": _retrieval(pipe, q_style, style, texts),
        }
    return out


def near_and_far(emoji: EmojiData, unseen: LabelledImages, q: torch.Tensor, classes: torch.Tensor) -> dict:
    """The unseen figures again for the *near* concepts (a content word of the name is in a training name or
    caption) and the *far* ones (none is), each against every unseen candidate, with the group sizes."""
    near = torch.from_numpy(near_drawings(emoji, unseen))
    rule = (
        "a content word of the name is in {} training name or caption (data/emoji/transfer.py); candidates: every "
        "unseen"
    )
    return {
        "unseen_near": _group(unseen, q, classes, near, "near unseen concepts: " + rule.format("a")),
        "unseen_far": _group(unseen, q, classes, ~near, "far unseen concepts: " + rule.format("no")),
    }


def near_drawings(emoji: EmojiData, unseen: LabelledImages) -> np.ndarray:
    """(drawings,) bool: the drawing's concept is near (a content word of its name is in a training name or
    caption: data/emoji/transfer.py)."""
    index = {name: c for c, name in enumerate(emoji.names)}
    return np.array([bool(emoji.shared_words[index[unseen.class_names[y]]]) for y in unseen.labels])


def imagenet_drawings(unseen: LabelledImages, matches: dict[str, str | None] | None = None) -> np.ndarray:
    """(drawings,) bool: the drawing's concept name matches an ImageNet-1k class (data/imagenet.py); `matches`
    (concept name -> its class or None) when the caller has them already."""
    matches = matches or {n: imagenet_match(n) for n in unseen.class_names}
    return np.array([matches[unseen.class_names[y]] is not None for y in unseen.labels])


def encoder_seen(unseen: LabelledImages, q: torch.Tensor, classes: torch.Tensor, trained_on: str) -> dict:
    """For a model built on an ImageNet-1k encoder: the unseen figures again for the concepts whose names match an
    ImageNet class (the encoder saw them with labels; data/imagenet.py) and for the rest, with the matches."""
    if trained_on != "imagenet-1k":
        return {}
    matches = {n: imagenet_match(n) for n in unseen.class_names}
    seen = torch.from_numpy(imagenet_drawings(unseen, matches))
    where = "(data/imagenet.py); candidates: every unseen concept"
    return {
        "unseen_encoder_seen": {
            **_group(unseen, q, classes, seen, f"unseen concepts whose name matches an ImageNet-1k class {where}"),
            "matches": {n: m for n, m in matches.items() if m},
        },
        "unseen_encoder_unseen": _group(
            unseen, q, classes, ~seen, f"unseen concepts whose name matches no ImageNet-1k class {where}"
        ),
    }


def _group(unseen: LabelledImages, q: torch.Tensor, classes: torch.Tensor, mask: torch.Tensor, setting: str) -> dict:
    figures = classification(q[mask], classes, unseen.labels[mask]) if mask.any() else {"images": 0}
    return {"setting": setting, "concepts": len({int(y) for y in unseen.labels[mask]}), **figures}


def pretrained_image_encoder(model) -> str:
    """What labelled data the model's pretrained image encoder saw ("" without one): lit's encoder, or the encoder
    a DiffDis model was aligned to in training (REPA)."""
    if hasattr(model, "image_encoder"):
        return model.image_encoder.spec.trained_on
    t = model.config.train
    if t.align_weight > 0:
        spec = IMAGE_ENCODERS.get(t.align_encoder)
        return spec.trained_on if spec else "unknown (an encoder from a folder)"
    return ""


def _subset(data: LabelledImages, images: int | None) -> LabelledImages:
    return data if images is None else fixed_subset(data, images)


def _generalized(pipe, emoji, unseen, seen, q: torch.Tensor, texts: TextCache) -> dict:
    """Unseen and seen images together (`q`: their queries, unseen first), every seen concept and the split's
    unseen concepts as candidates."""
    names = tuple(emoji.names[c] for c in emoji.concepts("train")) + unseen.class_names
    position = {n: k for k, n in enumerate(names)}
    labels = torch.tensor(
        [position[unseen.class_names[y]] for y in unseen.labels] + [position[seen.class_names[y]] for y in seen.labels]
    )
    scores = q @ texts.classes(pipe, names).T
    first_unseen = len(names) - len(unseen.class_names)
    return {
        "setting": "every seen concept and the unseen ones as candidates",
        **unseen_class_accuracy(scores, labels, list(range(first_unseen, len(names)))),
    }


def emoji_judge(emoji: EmojiData, seed: int = 0, epochs: int = 12) -> tuple[Judge, dict]:
    """A CNN trained on real drawings of every concept in every style (unseen concepts and OpenMoji included: it
    judges generations, it is not the model under test), its accuracy measured on a seeded 15% it never saw."""
    images = torch.from_numpy(emoji.images)
    labels = torch.tensor([r["concept"] for r in emoji.index["images"]])
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = round(JUDGE_TEST_FRACTION * len(labels))
    test = LabelledImages(images[order[:cut]], labels[order[:cut]], emoji.names)
    judge = train_judge(LabelledImages(images[order[cut:]], labels[order[cut:]], emoji.names), epochs)
    record = {
        "judge": f"small CNN on {len(labels) - cut} real emoji drawings of all {len(emoji.names)} concepts, all four "
        f"styles ({epochs} epochs, seed {seed})",
        "test_accuracy": accuracy(judge, test),
        "test_images": cut,
        "chance": 100.0 / len(emoji.names),
    }
    return judge, record


def emoji_generation(
    pipe,
    emoji: EmojiData,
    judge: Judge,
    concepts: list[int],
    per_concept: int = 2,
    seed: int = 0,
    num_inference_steps: int = DEFAULT_GENERATION_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
    candidates: int = 1,
    extractor: InceptionFeatures | None = None,
    cache_dir: Path | None = None,
) -> tuple[torch.Tensor, dict]:
    """Samples prompted with each concept's name; judged correct when the judge names the prompted concept among
    all 1,426; with an Inception `extractor`, FID and KID against every real default-tone drawing of the same
    concepts (all four styles; their features cached in `cache_dir` when given). `candidates=K` keeps the best of
    K samples by the model's own discrimination pass (`pipe.generate`'s self-check). Returns the images
    (N, 3, R, R) uint8 and the record."""
    prompts = [GENERATION_TEMPLATE.format(emoji.names[c]) for c in concepts for _ in range(per_concept)]
    images = pil_to_uint8(pipe.generate(prompts, num_inference_steps, guidance_scale, seed, candidates=candidates), 3)
    target = torch.tensor(concepts).repeat_interleave(per_concept)
    predicted = judge.predict(images)
    distances = {}
    if extractor is not None:
        real = torch.from_numpy(emoji.images[emoji.drawings_of(concepts, STYLES)])
        distances = fid_kid(real, images, cache_dir=cache_dir, real_key="emoji", extractor=extractor)
    return images, {
        "prompt": GENERATION_TEMPLATE,
        "concepts": len(concepts),
        "images": len(prompts),
        **generation_settings(num_inference_steps, guidance_scale, seed, candidates=candidates),
        "judged_correct": 100.0 * (predicted == target).float().mean().item(),
        "correct": (predicted == target).int().tolist(),  # per sample, prompts concept by concept
        "chance": 100.0 / len(emoji.names),
        "fid_kid": distances or None,
    }
