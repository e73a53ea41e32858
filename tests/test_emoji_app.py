"""The web app's service with an emoji model: examples and gallery of concepts it never saw, its labels and
prompts, labels up to every concept name, and label-embedding memory that stays bounded."""

from __future__ import annotations

import pytest
import torch
from helpers import SMALL
from PIL import Image

from diffdis import DiffDisPipeline, preset
from diffdis.data.builtin import data_overrides
from diffdis.data.emoji import EVAL_TEMPLATES, EmojiData
from diffdis.pipeline import LABEL_CACHE_SIZE

pytest.importorskip("gradio", reason="the web app needs the app extra (pip install 'diffdis[app]')")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from diffdis.app.service import AppService

    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(preset("tiny", [*SMALL, *data_overrides("emoji")]))
    pipe.vocabulary = EmojiData.load(16).vocabulary()
    service = AppService(pipe, tmp_path_factory.mktemp("emoji-app"))
    yield service
    service.close()


def test_an_emoji_model_is_shown_concepts_it_never_saw(service):
    held_out = set(service.pipe.vocabulary["held_out_test"])
    assert service.emoji and service.default_labels() == service.pipe.vocabulary["held_out_test"]
    assert len(service.examples) == 10 and all(p.exists() for p in service.examples)
    assert Image.open(service.examples[0]).size == (64, 64)
    assert len(service.gallery.images) == 427
    assert all(name.split(" (")[0] in held_out for name in service.gallery.names)
    assert service.prompt("red apple") == "an emoji of red apple."
    assert len(service.all_labels()) == 1426 and service.limits.labels >= 1426


def test_labels_are_read_with_the_emoji_templates(service):
    image = Image.open(service.examples[0])
    result = service.classify([image], ["cat face", "dog face", "red apple"], steps=1)
    assert set(result[0]) == {"cat face", "dog face", "red apple"}
    assert (("cat face", "dog face", "red apple"), EVAL_TEMPLATES) in service.pipe.cached_label_sets()
    found = service.search_gallery("a picture of a red apple.", top=3, steps=1)
    assert len(found) == 3 and all(-1 <= cosine <= 1 for _, _, cosine in found)


def test_label_embeddings_stay_bounded(service):
    pipe = service.pipe
    for k in range(LABEL_CACHE_SIZE + 10):
        pipe.class_embeddings([f"label {k}", f"other {k}"], EVAL_TEMPLATES)
    assert len(pipe.cached_label_sets()) == LABEL_CACHE_SIZE
    assert (
        ("label 0", "other 0"),
        EVAL_TEMPLATES,
    ) not in pipe.cached_label_sets()  # the least recently used went first
