"""The pretrained visual prior: the image-encoder registry, its feature cache, REPA in the objective and the
training loop, the locked-image baseline lit, and the ImageNet-class split of unseen concepts."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from helpers import SMALL, run_overrides
from safetensors.torch import load_file, save_file
from torch import nn

from diffdis.cli import main
from diffdis.config import ConfigError, preset
from diffdis.data.datasets import CaptionedImages, LabelledImages
from diffdis.data.imagenet import imagenet_classes, imagenet_match
from diffdis.evaluation.emoji import encoder_seen
from diffdis.image_features import cached_features
from diffdis.lit import LitSettings, LockedImageText
from diffdis.models import image_encoders
from diffdis.models.image_encoders import (
    IMAGE_ENCODERS,
    ImageEncoderError,
    ImageEncoderSpec,
    image_encoder,
    register_image_encoder,
)
from diffdis.objective import DiffDisObjective

TOY = "toy-test-encoder"


def _toy_network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Conv2d(3, 8, 4, stride=4)  # 16 px -> a (8, 4, 4) feature map


@pytest.fixture(scope="module")
def toy():
    if TOY not in IMAGE_ENCODERS:
        register_image_encoder(
            ImageEncoderSpec(TOY, _toy_network, 16, (0.5,) * 3, (0.5,) * 3, 8, "test only", "seeded", "")
        )
    return image_encoder(TOY)


@pytest.fixture()
def feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFDIS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def test_a_toy_encoder_registers_with_one_call_and_a_folder_comes_through_the_same_door(toy, tmp_path):
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert toy(images).shape == (2, 8, 4, 4)
    with pytest.raises(ImageEncoderError, match="registered already"):
        register_image_encoder(IMAGE_ENCODERS[TOY])
    with pytest.raises(ImageEncoderError, match="efficientnet-lite0"):
        image_encoder("no-such-encoder")

    folder = tmp_path / "mine"
    folder.mkdir()
    save_file(_toy_network(seed=1).state_dict(), str(folder / "model.safetensors"))
    (folder / "encoder.json").write_text(json.dumps({"architecture": TOY, "licence": "mine"}))
    from_folder = image_encoder(folder)
    assert torch.equal(
        from_folder(images),
        image_encoders.FrozenImageEncoder(dataclasses.replace(IMAGE_ENCODERS[TOY], build=lambda: _toy_network(seed=1)))(
            images
        ),
    )
    assert not torch.equal(from_folder(images), toy(images))  # the folder's weights, not the builder's
    (folder / "encoder.json").write_text(json.dumps({"architecture": "resnet-nobody-registered"}))
    with pytest.raises(ImageEncoderError, match="not registered"):
        image_encoder(folder)


def test_efficientnet_lite0_names_a_photo_and_refuses_weights_that_are_not_the_pinned_ones(monkeypatch):
    from sklearn.datasets import load_sample_image

    encoder = image_encoder("efficientnet-lite0")
    photo = torch.from_numpy(load_sample_image("flower.jpg").copy()).permute(2, 0, 1)[None]  # a daisy-like flower
    with torch.no_grad():
        logits = encoder.network.classify(encoder.prepare(photo))
    top3 = [imagenet_classes()[int(i)] for i in logits.topk(3).indices[0]]
    assert "daisy" in top3, top3
    monkeypatch.setattr(image_encoders, "LITE0_SHA256", "0" * 64)
    with pytest.raises(ImageEncoderError, match="not the pinned"):
        image_encoder("efficientnet-lite0")


def test_the_feature_cache_is_keyed_by_encoder_and_images_and_refused_when_stale(toy, feature_cache):
    calls = []
    toy.network.register_forward_hook(lambda *_: calls.append(1))
    images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8)
    first = cached_features(toy, images, maps=True, log=lambda _: None)
    assert first.maps.shape == (40, 8, 4, 4) and torch.allclose(
        first.pooled, first.maps.float().mean((2, 3)), atol=1e-2
    )
    made = len(calls)
    again = cached_features(toy, images, maps=True, log=lambda _: None)
    assert len(calls) == made and torch.equal(again.maps, first.maps)  # read back, not computed
    pooled = cached_features(toy, images, log=lambda _: None)  # the pooled half of the same file serves
    assert len(calls) == made and pooled.maps is None and torch.equal(pooled.pooled, first.pooled)

    other = images.clone()
    other[0, 0, 0, 0] ^= 1  # one changed bit is another image set
    cached_features(toy, other, maps=True, log=lambda _: None)
    assert len(calls) > made

    (path,) = [
        p
        for p in feature_cache.iterdir()
        if load_file(str(p))["pooled"].shape[0] == 40
        and "maps" in load_file(str(p))
        and torch.equal(load_file(str(p))["maps"], first.maps)
    ]
    tensors = load_file(str(path))
    tensors["pooled"][0, 0] += 1  # damaged: the checksum no longer matches
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    save_file(tensors, str(path), metadata=metadata)
    made = len(calls)
    repaired = cached_features(toy, images, maps=True, log=lambda _: None)
    assert len(calls) > made and torch.equal(repaired.pooled, first.pooled)


def _batch(pipe, n: int = 4) -> dict:
    m = pipe.config.model
    torch.manual_seed(1)
    images = torch.randint(0, 256, (n, m.image_channels, m.resolution, m.resolution), dtype=torch.uint8)
    return {"images": images, "captions": ["a t-shirt", "a bag", "a coat", "a dress"][:n]}


def _objective(pipe, **train):
    return DiffDisObjective.from_pipeline(pipe, dataclasses.replace(pipe.config.train, **train))


def test_repa_off_is_todays_loss_and_on_adds_only_its_own_term(small_pipeline, toy):
    batch = _batch(small_pipeline)
    off = _objective(small_pipeline)
    assert off.align is None and not any("align" in n for n, _ in off.named_parameters())
    plain = off(batch, torch.Generator().manual_seed(3))
    assert torch.equal(plain["loss"], plain["terms"][0] + plain["terms"][1])
    assert torch.equal(plain["loss"], plain["l_ig"] + off.lam * plain["l_ita"])

    on = _objective(small_pipeline, align_weight=0.5, align_encoder=TOY)
    aligned = on(batch, torch.Generator().manual_seed(3))
    assert torch.equal(aligned["l_ig"], plain["l_ig"]) and torch.equal(aligned["l_ita"], plain["l_ita"])  # same draws
    assert -1 <= aligned["l_align"].item() <= 1
    assert torch.allclose(aligned["loss"], plain["loss"] + 0.5 * aligned["l_align"])
    aligned["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in on.align.parameters())
    assert {id(p) for p in on.align.parameters()} <= {id(p) for p in on.new_parameters()}

    features = toy(batch["images"])  # targets the batch brings (the cache) = targets computed on the fly
    brought = on({**batch, "features": features}, torch.Generator().manual_seed(3))
    assert torch.equal(brought["l_align"], aligned["l_align"])


@pytest.mark.parametrize("variant", ["gen", "dis", "clip"])
def test_repa_aligns_every_variant_with_a_unet(toy, variant):
    from diffdis import DiffDisPipeline

    config = preset("tiny", [*SMALL, f"model.variant={variant}"])
    pipe = DiffDisPipeline.from_config(config)
    out = _objective(pipe, align_weight=1.0, align_encoder=TOY, align_layer="down.1")(_batch(pipe))
    assert out["l_align"].item() != 0
    out["loss"].backward()
    assert out["loss"].isfinite()


def test_alignment_settings_that_cannot_work_are_refused(small_pipeline, toy):
    for bad, match in (("train.align_layer=up.1", "align_layer"), ("train.align_weight=-1", "align_weight")):
        with pytest.raises(ConfigError, match=match):
            preset("tiny", [bad])
    with pytest.raises(ConfigError, match="with N below 3"):
        _objective(small_pipeline, align_weight=0.5, align_encoder=TOY, align_layer="down.7")


@pytest.mark.slow
def test_a_repa_run_exports_no_projector_and_refuses_a_changed_alignment_on_resume(
    tmp_path, idx_dir, toy, feature_cache, capsys
):
    run = tmp_path / "run"
    sets = [
        a for o in run_overrides(idx_dir, "train.align_weight=0.5", f"train.align_encoder={TOY}") for a in ("--set", o)
    ]
    base = ["train", "--out", str(run), "--checkpoint-every", "2", "--no-progress"]
    assert main([*base, "--max-steps", "2", *sets]) == 0
    exported = [k for f in (run / "model").rglob("*.safetensors") for k in load_file(str(f))]
    assert exported and not any("align" in k or "projector" in k for k in exported)
    assert any(feature_cache.iterdir())  # the stand-in set's features were cached for the next run
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert main([*base, "--max-steps", "4", *sets, "--set", "train.align_weight=0.25"]) == 2
    assert "train.align_weight" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_lit_fits_a_map_into_the_text_space_saves_loads_and_is_evaluated(
    toy, small_config, feature_cache, tmp_path, idx_dir
):
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}
    images, ids = [], []
    for k, rgb in enumerate(colours.values()):
        block = torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(24, 3, 16, 16).clone()
        block = (block.int() + torch.randint(-20, 20, block.shape)).clamp(0, 255).to(torch.uint8)
        images.append(block)
        ids += [k] * 24
    data = CaptionedImages(torch.cat(images), torch.tensor(ids), tuple((f"a {c} square",) for c in colours))
    lit = LockedImageText.fit(toy, small_config, data, settings=LitSettings(steps=200), log=lambda _: None)
    test = torch.cat([img[:2] for img in images])  # (6, 3, 16, 16)
    expected = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.equal(lit.classify(test, [f"{c} square" for c in colours]), expected)
    lit.save(tmp_path / "lit")
    again = LockedImageText.load(tmp_path / "lit")
    assert torch.allclose(again.encode_image(test), lit.encode_image(test), atol=1e-6)

    # `diffdis evaluate` scores a saved lit like a pipeline
    out = tmp_path / "suite.json"
    args = ["evaluate", "--model", str(tmp_path / "lit"), "--suite", "fashion", "--data-dir", str(idx_dir)]
    assert main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert 0 <= result["zero_shot"]["fashion-mnist"]["top1"] <= 100 and "image_to_text_R@1" in result["retrieval"]


def test_unseen_concepts_that_are_imagenet_classes_are_reported_apart():
    assert len(imagenet_classes()) == 1000
    assert imagenet_match("hot dog") == "hot dog" and imagenet_match("teddy bear") == "teddy bear"
    assert imagenet_match("white circle") is None  # "small white" (a butterfly) needs both words
    unseen = LabelledImages(
        torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 0, 1, 1]), ("zebra", "white circle")
    )
    q = torch.eye(2)[[0, 1, 1, 1]]  # one zebra drawing answered wrong
    out = encoder_seen(unseen, q, torch.eye(2), "imagenet-1k")
    assert out["unseen_encoder_seen"]["top1"] == 50.0 and out["unseen_encoder_seen"]["matches"] == {"zebra": "zebra"}
    assert out["unseen_encoder_unseen"]["top1"] == 100.0 and out["unseen_encoder_unseen"]["concepts"] == 1
    assert encoder_seen(unseen, q, torch.eye(2), "") == {}  # no pretrained image encoder: nothing to set apart
