"""The emoji data set on the installed packages (`diffdis emoji install`, run by the set-up): the installer's
checks, the catalogue, the cache, and the holdouts that keep "zero-shot" honest."""

from __future__ import annotations

import argparse
import io
import tarfile

import numpy as np
import pytest

from diffdis.data.captions import NamesAny
from diffdis.data.emoji import EmojiData, EmojiDataError, load_catalogue, require_packages, splits
from diffdis.data.emoji.catalogue import kebab
from diffdis.data.emoji.images import _render_or_error, render
from diffdis.data.emoji.packages import PACKAGES, Package, install_packages, integrity_of, package_dir, unpack
from diffdis.data.emoji.splits import (
    EVAL_TEMPLATES,
    NAME_TEMPLATES,
    TRAIN_STYLES,
    UNSEEN_STYLE,
    SplitMismatch,
    concept_captions,
)
from diffdis.data.emoji.transfer import content_words, near_concepts, stem


@pytest.fixture(scope="module")
def emoji():
    return EmojiData.load(16)


def _tarball(path):
    data = b'{"name": "x"}'
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def test_a_tarball_that_differs_from_its_pin_is_refused_and_deleted(tmp_path):
    tarball = _tarball(tmp_path / "x-1.0.0.tgz")
    wrong = Package("x", "1.0.0", "sha512-" + "A" * 86 + "==", "MIT", "")
    with pytest.raises(EmojiDataError, match="not the pinned"):
        unpack(wrong, tarball, tmp_path / "x")
    assert not tarball.exists() and not (tmp_path / "x").exists()


def test_a_tarball_that_matches_its_pin_is_unpacked_and_marked_verified(tmp_path):
    tarball = _tarball(tmp_path / "x-1.0.0.tgz")
    right = Package("x", "1.0.0", integrity_of(tarball), "MIT", "")
    unpack(right, tarball, tmp_path / "x")
    assert (tmp_path / "x" / "package" / "package.json").exists()
    assert (tmp_path / "x" / ".verified").read_text().strip() == right.integrity


def test_missing_npm_and_missing_packages_say_what_to_do(tmp_path):
    with pytest.raises(EmojiDataError, match="diffdis emoji install"):
        require_packages(tmp_path)
    with pytest.raises(EmojiDataError, match="apt-get install npm"):
        install_packages(tmp_path, npm="no-such-npm-here")


def test_every_package_is_pinned_with_a_licence_and_the_cc_ones_with_attribution():
    for p in PACKAGES:
        assert p.version.count(".") == 2 and p.integrity.startswith("sha512-") and p.licence
        assert (package_dir(p) / ".verified").read_text().strip() == p.integrity
    assert {p.name for p in PACKAGES if "CC-BY" in p.licence} == {"emoji-datasource-twitter", "openmoji"}
    assert all(p.attribution for p in PACKAGES if "CC-BY" in p.licence)
    assert not any(word in p.name for p in PACKAGES for word in ("apple", "facebook", "joypixels"))


def test_the_catalogue_of_core_concepts():
    catalogue = load_catalogue()
    names = [c.name for c in catalogue.concepts]
    assert len(names) == 1426 and len(set(names)) == len(names)  # names identify concepts
    assert not any("," in n for n in names)
    assert catalogue.dropped["flags"] == 270 and catalogue.dropped["name with a comma (ZWJ family)"] == 4
    styles = {s: {d.concept for d in catalogue.drawings if d.style == s and not d.tone} for s in TRAIN_STYLES}
    assert len(styles["google"]) == len(styles["twitter"]) == len(names)
    assert len(styles["fluent"]) >= 1390
    assert {"red apple", "dog face", "waving hand", "first quarter moon face"} <= set(names)
    toned = [catalogue.drawing_name(d) for d in catalogue.drawings if d.tone]
    assert "waving hand: medium skin tone" in toned
    assert load_catalogue() == catalogue  # deterministic
    assert kebab("woman’s hat") == "womans-hat" and kebab("piñata") == "pinata"


def test_the_cache_decodes_and_is_checked(emoji):
    assert emoji.images.shape == (8891, 3, 16, 16) and emoji.images.dtype == np.uint8
    per_image_spread = emoji.images.reshape(len(emoji.images), -1).std(1)
    assert per_image_spread.min() > 5  # every image holds a drawing, none is blank
    assert emoji.index["failed_drawings"] == []
    assert set(emoji.index["packages"]) == {p.name for p in PACKAGES}
    assert EmojiData.load(16).index["checksum"] == emoji.index["checksum"]


def test_a_drawing_that_fails_to_render_is_reported_not_fatal(tmp_path):
    broken = tmp_path / "broken.svg"
    broken.write_text("<svg this is not")
    assert isinstance(_render_or_error((str(broken), 16)), str)
    empty = tmp_path / "empty.svg"
    empty.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')
    with pytest.raises(ValueError, match="no opaque pixel"):
        render(str(empty), 16)


def test_the_splits_are_disjoint_fixed_and_sized(emoji):
    test, val, train = (set(emoji.concepts(s)) for s in ("test", "val", "train"))
    assert not (test & val or test & train or val & train)
    assert len(test | val | train) == 1426 and len(test) == 143 and len(val) == 71
    # A snapshot: the held-out concepts must never move between versions (models record them by name).
    first = [emoji.names[c] for c in sorted(test)[:3]]
    assert first == ["smiling face with smiling eyes", "disguised face", "downcast face with sweat"]


def test_no_image_or_caption_of_a_held_out_concept_or_style_is_trained_on(emoji):
    rows = emoji.training_rows()
    records = [emoji.index["images"][i] for i in rows]
    held = set(emoji.concepts("test")) | set(emoji.concepts("val"))
    assert not any(r["concept"] in held for r in records)
    assert not any(r["style"] == UNSEEN_STYLE for r in records)
    assert not set(rows) & set(emoji.seen_validation_images)
    data, rule = emoji.training_set()
    names_held = NamesAny(tuple(emoji.names[c] for c in held))
    captions = [c for s in data.caption_sets for c in s]
    assert not any(names_held(c) for c in captions)
    assert rule["captions_removed"] > 0 and len(data) == len(rows) - rule["images_removed"]
    prompts = {t.format(n) for t in EVAL_TEMPLATES for n in emoji.names}
    assert not prompts & set(captions)  # no evaluation prompt is a training caption


def test_captions_name_the_concept_and_its_keywords():
    captions = concept_captions("red apple", ("apple", "fruit", "red", "food"))
    assert captions[: len(NAME_TEMPLATES)] == tuple(t.format("red apple") for t in NAME_TEMPLATES)
    assert "red apple: apple, fruit, red." in captions


def test_evaluation_sets(emoji):
    unseen = emoji.eval_set("emoji-unseen")
    drawn = sum(s in emoji.default_drawings[c] for c in emoji.concepts("test") for s in TRAIN_STYLES)
    assert len(unseen.class_names) == 143 and len(unseen) == drawn > 2 * 143  # one default drawing per style
    style = emoji.eval_set("emoji-style")
    assert len(style.class_names) == 1212 and len(style) == 1212
    seen = emoji.eval_set("emoji-seen-val")
    assert set(seen.class_names) <= {emoji.names[c] for c in emoji.concepts("train")}
    vocabulary = emoji.vocabulary()
    assert len(vocabulary["classes"]) == 1212 and len(vocabulary["held_out_test"]) == 143
    assert not set(vocabulary["classes"]) & set(vocabulary["held_out_test"] + vocabulary["held_out_validation"])
    with pytest.raises(ValueError, match="emoji-unseen"):
        emoji.eval_set("emoji-nope")


def test_the_builtin_registry_refuses_what_a_set_cannot_train_on():
    from diffdis.config import ConfigError, preset
    from diffdis.data.builtin import builtin, check_builtin, data_overrides

    assert "model.image_channels=3" in data_overrides("emoji")
    with pytest.raises(ConfigError, match="image_channels=3"):
        check_builtin(preset("tiny", ["train.data=emoji"]))
    with pytest.raises(ConfigError, match="holdout_classes does not apply to emoji"):
        check_builtin(preset("tiny", [*data_overrides("emoji"), "train.holdout_classes=dog face"]))
    with pytest.raises(ConfigError, match="fashion-mnist, shapes, emoji"):
        builtin("cifar")


def test_the_split_of_record_is_checked_and_a_model_with_other_holdouts_is_refused(emoji, monkeypatch):
    emoji.check_split()  # the installed packages give the split every figure of record used
    vocabulary = emoji.vocabulary()
    emoji.check_split(vocabulary)
    moved = emoji.names[emoji.concepts("test")[0]]
    other = {**vocabulary, "held_out_test": [*vocabulary["held_out_test"][1:], "a concept from elsewhere"]}
    with pytest.raises(SplitMismatch, match=moved):
        emoji.check_split(other)
    emoji.check_split({"data": "fashion-mnist"})  # not an emoji model: nothing to compare
    monkeypatch.setattr(splits, "SPLIT_FINGERPRINT", "0" * 16)
    with pytest.raises(SplitMismatch, match="diffdis emoji install"):
        emoji.check_split()


def test_a_held_out_seen_drawing_trains_in_no_skin_tone(emoji):
    records = emoji.index["images"]
    held = {(records[i]["concept"], records[i]["style"]) for i in emoji.seen_validation_images}
    toned = [
        i
        for i in emoji.seen_validation_images
        if any(
            r["tone"] and (r["concept"], r["style"]) == (records[i]["concept"], records[i]["style"]) for r in records
        )
    ]
    assert toned  # the rule matters: some held-out drawings have skin-tone siblings
    assert not any((records[i]["concept"], records[i]["style"]) in held for i in emoji.training_rows(skin_tones=True))


def test_a_caption_that_names_a_held_out_concept_across_punctuation_is_removed(emoji):
    data, _ = emoji.training_set()
    held = NamesAny(tuple(emoji.names[c] for c in emoji.concepts("test") + emoji.concepts("val")))
    unpunctuated = [splits._unpunctuated(c) for s in data.caption_sets for c in s]
    assert not any(held(c) for c in unpunctuated)
    assert splits._unpunctuated("mountain railway: car, trip.") == "mountain railway car trip"


def test_stemming_meets_plurals_and_irregular_forms():
    assert stem("teeth") == stem("tooth") == "tooth"
    assert stem("cats") == "cat" and stem("berries") == "berry" and stem("running") == "run"
    assert stem("glass") == "glass" and stem("bus") == "bus"
    assert content_words("an emoji of a Smiling Cat.") == {"smil", "cat"}


def test_near_and_far_concepts():
    found = near_concepts({0: "tooth", 1: "gorilla", 2: "grinning cat"}, ["teeth: mouth, dentist.", "cat face"])
    assert found == {0: ["tooth"], 1: [], 2: ["cat"]}
    emoji_like = near_concepts({0: "newspaper"}, ["rolled-up newspaper", "an emoji for news, paper, rolled."])
    assert emoji_like == {0: ["newspaper"]}  # a trained drawing's name counts even when its captions were removed


def test_every_held_out_concept_is_near_or_far(emoji):
    shared = emoji.shared_words
    held = emoji.concepts("test") + emoji.concepts("val")
    assert set(shared) == set(held)
    far = [c for c in emoji.concepts("test") if not shared[c]]
    assert 20 < len(far) < 143  # both groups are populated on the split of record
    data, _ = emoji.training_set()
    trained = set().union(*(content_words(c) for s in data.caption_sets for c in s))
    assert not any(content_words(emoji.names[c]) & trained for c in far)


def test_generation_settings_are_chosen_on_seen_concepts_that_no_figure_of_record_prompts(emoji):
    from diffdis.experiments.emoji_demo import JUDGED_CONCEPTS, prompt_concepts
    from diffdis.experiments.generation_settings import TUNING, _setting, tuning_concepts

    tuning = tuning_concepts(emoji)
    seen, unseen = prompt_concepts(emoji)
    assert len(set(tuning)) == TUNING and set(tuning) <= set(emoji.concepts("train"))
    assert not set(tuning) & set(seen[:JUDGED_CONCEPTS]) and not set(tuning) & set(unseen)
    assert _setting("5,50,8") == (5.0, 50, 8)  # a --settings triple: guidance, steps, candidates
    with pytest.raises(argparse.ArgumentTypeError, match="GUIDANCE,STEPS,CANDIDATES"):
        _setting("5,50")
