"""Training captions in the user's words: several names per class (ours, the official ones, WordNet's), singular
and plural, in templates disjoint from the evaluation prompts; held-out classes named by no caption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffdis.config import Config, preset
from diffdis.data.captions import EVAL_TEMPLATES, TRAIN_TEMPLATES, NamesAny
from diffdis.data.datasets import FASHION_MNIST_CLASSES
from diffdis.data.vocabulary import (
    FASHION_MNIST_OFFICIAL,
    SNAPSHOT,
    WORDNET_DIR,
    fashion_mnist_captions,
    fashion_mnist_names,
    noun_phrases,
    plural,
    wordnet_snapshot,
)


@pytest.mark.skipif(not Path(WORDNET_DIR, "data.noun").exists(), reason="WordNet (wordnet-base) is not installed")
def test_the_packaged_names_are_what_wordnet_says():
    assert json.loads(SNAPSHOT.read_text()) == wordnet_snapshot()


def test_every_class_has_our_official_and_wordnet_names():
    names = fashion_mnist_names()
    lemmas = json.loads(SNAPSHOT.read_text())["classes"]
    for ours, official, known in zip(FASHION_MNIST_CLASSES, FASHION_MNIST_OFFICIAL, names):
        lower = {n.lower() for n in known}
        assert known[0] == ours and official.lower() in lower
        assert {lemma.lower() for lemma in lemmas[ours]["lemmas"]} <= lower
    assert "pant" in {n.lower() for n in names[1]} and "purse" in names[8] and "boot" in names[9]


def test_plurals_and_articles():
    assert plural("pair of trousers") == "pairs of trousers" and plural("dress") == "dresses"
    assert plural("ankle boot") == "ankle boots" and plural("trousers") is None and plural("T-shirt/top") is None
    assert noun_phrases("ankle boot") == ("an ankle boot", "ankle boots")
    assert noun_phrases("pair of trousers") == ("a pair of trousers", "pairs of trousers")
    assert noun_phrases("pants") == ("pants",)


def test_no_training_caption_is_an_evaluation_prompt():
    captions = {c for s in fashion_mnist_captions("varied") for c in s}
    for names in fashion_mnist_names():
        prompts = {t.format(n) for t in EVAL_TEMPLATES for n in names}
        assert not captions & prompts
    assert len(captions) > 10 * len(TRAIN_TEMPLATES)  # far more variety than one name in eight templates


def test_a_held_out_class_is_named_by_no_caption_of_any_class():
    shirt = FASHION_MNIST_CLASSES.index("shirt")
    sets = fashion_mnist_captions("varied", [shirt])
    assert sets[shirt] == ()
    everything = [c for s in sets for c in s]
    assert not any(NamesAny(("shirt",))(c) for c in everything)
    assert any("tee shirt" in c for c in fashion_mnist_captions("varied")[0])  # present when shirt is trained on
    assert not any("shirt" in c.lower() for c in everything)  # "t-shirt" and "T-shirt/top" are gone too
    assert sets[0] and any("jersey" in c for c in sets[0])  # the t-shirt class keeps its other names


def test_fixed_captions_are_one_name_in_the_eight_templates():
    sets = fashion_mnist_captions("fixed")
    assert sets[1] == tuple(t.format("pair of trousers") for t in TRAIN_TEMPLATES)


def test_configs_saved_before_the_caption_setting_read_as_fixed():
    saved = preset("tiny").to_dict()
    del saved["train"]["captions"]
    assert Config.from_dict(saved).train.captions == "fixed"
    assert preset("tiny").train.captions == "varied"
