"""The model work behind the web app, free of any web framework: one loaded pipeline, the retrieval gallery
(its image queries computed once per query setting), example images, and each tab's request as a method that
takes checked inputs and returns plain Python values (PIL images, names, numbers)."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ..config import DEFAULT_QUERY_STEPS
from ..data.captions import GENERATION_PROMPT
from ..data.datasets import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    LabelledImages,
    fixed_subset,
    load_fashion_mnist,
)
from ..data.emoji import EVAL_TEMPLATES as EMOJI_TEMPLATES
from ..data.emoji import GENERATION_TEMPLATE as EMOJI_PROMPT
from ..data.emoji import EmojiData
from ..data.image_files import image_files, read_images
from ..model_card import CARD_NAME, MEASURED_NAME
from ..pipeline import DiffDisPipeline
from ..pretrained import RELEASE_NAME
from ..samplers import DEFAULT_SAMPLER
from .inputs import Limits

GALLERY_SIZE = 500  # images of the default retrieval gallery (a fixed subset of the test split)
EMOJI_DISPLAY_SIZE = 64  # emoji examples and gallery are shown at this size (the model resizes what it reads)
Progress = Callable[[int, int], None]


@dataclass
class Gallery:
    """Images to search by text; `queries` caches their text queries per (steps, sampler)."""

    name: str
    images: list[Image.Image]
    names: list[str]
    queries: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)


@dataclass
class Scored:
    image: Image.Image
    caption: str


class AppService:
    def __init__(
        self,
        pipe: DiffDisPipeline,
        model_dir: str | Path,
        limits: Limits | None = None,
        gallery: str | Path | None = None,
        data_dir: str | Path = FASHION_MNIST_DIR,
    ):
        self.pipe, self.model_dir, self.limits = pipe, Path(model_dir), limits or Limits()
        self.examples_dir = Path(tempfile.mkdtemp(prefix="diffdis-app-examples-"))
        self.emoji = (pipe.vocabulary or {}).get("data") == "emoji"
        release = self.model_dir / RELEASE_NAME  # a released model says which concepts it draws well
        self.release = json.loads(release.read_text()) if release.is_file() else None
        # An emoji model's labels and prompts are read with the emoji evaluation templates, and a label list may
        # name every concept (the text encodings of one list are computed once and cached).
        self.templates = EMOJI_TEMPLATES if self.emoji else None
        if self.emoji:
            self.limits = dataclasses.replace(self.limits, labels=max(self.limits.labels, len(self.all_labels())))
            # drawings of concepts the model never saw, at a size people can see
            data = EmojiData.load(EMOJI_DISPLAY_SIZE)
            data.check_split(pipe.vocabulary)  # the examples must be concepts this model never saw
            test = data.eval_set("emoji-unseen")
        else:
            try:
                test = load_fashion_mnist("test", 28, 1, data_dir)  # the original 28x28 images, for people to see
            except FileNotFoundError:
                test = None
        self.examples = self._write_examples(test)
        self.gallery = self._gallery(gallery, test)

    # ------------------------------------------------------------------------------------------ start-up
    def _write_examples(self, test: LabelledImages | None) -> list[Path]:
        """One test image per class (the first ten classes), as PNG files the Classify tab offers (none without
        the data): Fashion-MNIST test images, or drawings of emoji concepts no training caption named."""
        if test is None:
            return []
        paths = []
        for k, name in enumerate(test.class_names[:10]):
            i = int((test.labels == k).nonzero()[0, 0])
            path = self.examples_dir / f"{name.replace(' ', '-').replace(':', '')}.png"
            _to_pil(test.images[i]).save(path)
            paths.append(path)
        return paths

    def _gallery(self, folder, test: LabelledImages | None) -> Gallery | None:
        """The user's folder (unreadable files skipped), else a fixed subset of the Fashion-MNIST test split."""
        if folder is not None:
            files = image_files(folder, limit=5000)
            kept, images, _ = read_images(files)
            return Gallery(str(folder), images, [files[i].name for i in kept])
        if test is None:
            return None
        subset = fixed_subset(test, GALLERY_SIZE)
        images = [_to_pil(a) for a in subset.images]
        if self.emoji:
            names = [f"{subset.class_names[int(y)]} (a concept never trained on)" for y in subset.labels]
            return Gallery(f"{len(images)} emoji drawings of concepts the model never saw", images, names)
        names = [f"test image, a {subset.class_names[int(y)]}" for y in subset.labels]
        return Gallery(f"{len(images)} Fashion-MNIST test images", images, names)

    def default_labels(self) -> list[str]:
        """The labels the Classify tab starts with: the class names the model was trained with (its vocabulary),
        else Fashion-MNIST's; for an emoji model, the concepts no training caption named (the zero-shot ones)."""
        vocabulary = self.pipe.vocabulary
        if self.emoji:
            return list(vocabulary["held_out_test"])
        return list(vocabulary["classes"]) if vocabulary else list(FASHION_MNIST_CLASSES)

    def all_labels(self) -> list[str]:
        """Every class or concept name the model's data has, trained on or held out."""
        vocabulary = self.pipe.vocabulary or {"classes": {n: [] for n in FASHION_MNIST_CLASSES}}
        held = [*vocabulary.get("held_out_test", []), *vocabulary.get("held_out_validation", [])]
        return sorted({*vocabulary["classes"], *held, *vocabulary.get("held_out_classes", [])})

    def showcase_prompts(self) -> list[str]:
        """Prompts the Generate tab opens with: for a released model, concepts its samples were judged to show
        (release.json's draws_well, measured), else the first default labels."""
        names = (self.release or {}).get("draws_well") or self.default_labels()
        return [self.prompt(name) for name in names]

    def prompt(self, name: str) -> str:
        """A generation prompt for a class name, in the words the model was trained with."""
        return (EMOJI_PROMPT if self.emoji else GENERATION_PROMPT).format(name)

    def close(self) -> None:
        """Delete the example files (safe to call more than once)."""
        shutil.rmtree(self.examples_dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------- requests
    def generate(
        self,
        prompt: str,
        num_images: int,
        steps: int,
        guidance: float,
        seed: int,
        candidates: int = 1,
        progress: Progress | None = None,
    ) -> list[Scored]:
        """`num_images` samples of one prompt (image i depends only on the seed and i), each captioned with the
        model's own score of it (the cosine of its text query with the prompt); with candidates > 1, the best of
        that many."""
        scoring = self.pipe.can_discriminate
        result = self.pipe.generate(
            [prompt] * num_images,
            num_inference_steps=steps,
            guidance_scale=guidance,
            seed=seed,
            candidates=candidates,
            return_scores=scoring,
            progress=progress,
        )
        if not scoring:
            return [Scored(image, f"seed {seed}, image {i + 1}") for i, image in enumerate(result)]
        out = []
        for i, image in enumerate(result.images):
            best = result.scores[i, result.chosen[i]].item()
            out.append(Scored(image, f"{best:.3f}" + (f", best of {candidates}" if candidates > 1 else "")))
        return out

    def classify(
        self,
        images: list[Image.Image],
        labels: list[str],
        steps: int = DEFAULT_QUERY_STEPS,
        sampler: str = DEFAULT_SAMPLER,
    ) -> list[dict[str, float]]:
        """Per image, every label's probability (softmax of the model's scaled cosines), most probable first."""
        prediction = self.pipe.predict(images, labels, self.templates, num_inference_steps=steps, sampler=sampler)
        return [dict(best) for best in prediction.top_k(len(labels))]

    def search_gallery(self, query: str, top: int, steps: int = DEFAULT_QUERY_STEPS, sampler: str = DEFAULT_SAMPLER):
        """The gallery's `top` images most like the text `query`: (image, name, cosine), best first."""
        gallery = self.gallery
        key = (steps, sampler)
        if key not in gallery.queries:
            gallery.queries[key] = self.pipe.encode_image(gallery.images, num_inference_steps=steps, sampler=sampler)
        cosines = gallery.queries[key] @ self.pipe.encode_text([query])[0]
        best = cosines.topk(min(top, len(gallery.images)))
        return [(gallery.images[i], gallery.names[i], c) for c, i in zip(best.values.tolist(), best.indices.tolist())]

    def rank_captions(self, image: Image.Image, captions: list[str]) -> dict[str, float]:
        """Each caption's probability for the image (softmax of the scaled cosines, as `classify` computes it)."""
        cosines = self.pipe.retrieve([image], captions, relevance=[[0]]).similarity[0]
        probabilities = self.pipe.probabilities(cosines)
        return dict(sorted(zip(captions, probabilities.tolist()), key=lambda pair: -pair[1]))

    def round_trip(
        self, prompt: str, labels: list[str], num_images: int, seed: int, progress: Progress | None = None
    ) -> tuple[list[Scored], dict[str, float]]:
        """Generate `num_images` of `prompt` and classify them against `labels` with the same network: each image
        captioned with its top label, and the labels' mean probabilities over the images."""
        images = self.pipe.generate([prompt] * num_images, seed=seed, progress=progress)
        per_image = self.classify(images, labels)
        scored = [Scored(image, top_label(p)) for image, p in zip(images, per_image)]
        mean = {name: sum(p[name] for p in per_image) / len(per_image) for name in labels}
        return scored, dict(sorted(mean.items(), key=lambda pair: -pair[1]))

    # ------------------------------------------------------------------------------------------ the model
    def card(self) -> str:
        path = self.model_dir / CARD_NAME
        return path.read_text() if path.is_file() else "This model folder has no model card (README.md)."

    def model_files(self) -> dict:
        """What the Model tab shows beside the card: config, training summary, measured figures, sample grid."""

        def read(name: str):
            path = self.model_dir / name
            return json.loads(path.read_text()) if path.is_file() else None

        grids = [self.model_dir / "samples.png", self.model_dir.parent / "samples.png"]
        return {
            "config": self.pipe.config.to_dict(),
            "training": read("train_summary.json"),
            "measured": read(MEASURED_NAME),
            "samples": next((str(p) for p in grids if p.is_file()), None),
        }

    def unfamiliar(self, texts: list[str]) -> list[str]:
        """Of `texts`, those unlike every training caption of the model (empty without its vocabulary)."""
        return [text for text, _, _ in self.pipe.unfamiliar(texts)]


def _to_pil(image: torch.Tensor) -> Image.Image:
    """(C, H, W) uint8 -> a PIL image ("L" for one channel)."""
    array = image.numpy()
    return Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))


def top_label(probabilities: dict[str, float]) -> str:
    """'label (p%)' for the most probable label of a most-probable-first dict."""
    label, p = next(iter(probabilities.items()))
    return f"{label} ({p:.0%})"


def random_seed() -> int:
    return random.randrange(2**31)
