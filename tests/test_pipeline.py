"""DiffDisPipeline: save/load, determinism, and a zero-shot path that never sees the labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from diffdis import DiffDisPipeline
from diffdis.data.datasets import LabelledImages
from diffdis.evaluation.zero_shot import zero_shot

NAMES = ("circle", "square", "cross")


def _images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    modes = ["L", "RGB", "RGBA", "P", "I;16", "LA"]
    out = []
    for i in range(n):
        size = (int(rng.integers(5, 60)), int(rng.integers(5, 60)))
        array = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(array, "RGB")
        mode = modes[i % len(modes)]
        out.append(image.convert(mode) if mode != "I;16" else Image.fromarray(array[..., 0].astype(np.uint16) * 200))
    return out


def test_save_and_load_give_identical_outputs(small_pipeline, tmp_path):
    images = _images()
    before_q = small_pipeline.encode_image(images, num_inference_steps=3, guidance_scale=2.0, seed=5)
    before_g = small_pipeline.generate(["a circle", "a cross"], num_inference_steps=4, seed=2)
    small_pipeline.save_pretrained(tmp_path / "model")
    loaded = DiffDisPipeline.from_pretrained(tmp_path / "model")
    assert not list((tmp_path / "model").rglob("*.bin")) and not list((tmp_path / "model").rglob("*.pt"))
    after_q = loaded.encode_image(images, num_inference_steps=3, guidance_scale=2.0, seed=5)
    after_g = loaded.generate(["a circle", "a cross"], num_inference_steps=4, seed=2)
    assert torch.equal(before_q, after_q)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(before_g, after_g))


def test_generation_and_encode_image_are_deterministic_per_seed(small_pipeline):
    pipe = small_pipeline
    a = pipe.generate(["a circle"] * 3, num_inference_steps=3, seed=7)
    b = pipe.generate(["a circle"] * 3, num_inference_steps=3, seed=7, batch_size=2)  # batching does not matter
    c = pipe.generate(["a circle"] * 3, num_inference_steps=3, seed=8)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))
    assert a[0].size == (16, 16) and a[0].mode == "L"

    images = _images()
    q1 = pipe.encode_image(images, num_inference_steps=2, seed=1)
    q2 = pipe.encode_image(images, num_inference_steps=2, seed=1, batch_size=4)
    q3 = pipe.encode_image(images, num_inference_steps=2, seed=2)
    assert torch.allclose(q1, q2, atol=1e-6)
    assert not torch.allclose(q1, q3)
    assert q1.shape == (len(images), pipe.model.text_dim)
    assert torch.allclose(q1.norm(dim=1), torch.ones(len(images)), atol=1e-5)


def test_zero_shot_input_does_not_depend_on_the_labels(small_pipeline):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 1, 16, 16), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (12,), generator=g)
    data = LabelledImages(images, labels, NAMES)
    relabelled = LabelledImages(images, (labels + 1) % 3, NAMES)
    a = zero_shot(small_pipeline, data, num_inference_steps=2)
    b = zero_shot(small_pipeline, relabelled, num_inference_steps=2)
    assert torch.equal(a.predictions, b.predictions)  # the labels only score, they never reach the model
    assert a.confusion.sum() == 12
    assert a.accuracy == pytest.approx(100.0 * (a.predictions == labels).float().mean().item())


def test_classify_and_retrieve(small_pipeline):
    images = _images(4)
    predicted = small_pipeline.classify(images, NAMES, num_inference_steps=2)
    assert predicted.shape == (4,) and predicted.max() < len(NAMES)
    result = small_pipeline.retrieve(images, ["a circle", "a square", "a cross", "a dot"], num_inference_steps=2)
    assert result.similarity.shape == (4, 4)
    assert set(result.metrics) == {f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)}
    assert result.metrics["image_to_text_R@5"] == 100.0  # 4 candidates: everything is in the top 5


def test_class_embeddings_are_computed_once(small_pipeline, monkeypatch):
    calls = []
    original = small_pipeline.encode_text
    monkeypatch.setattr(small_pipeline, "encode_text", lambda texts: calls.append(len(texts)) or original(texts))
    first = small_pipeline.class_embeddings(NAMES)
    second = small_pipeline.class_embeddings(NAMES)
    assert first is second and len(calls) == 1


def test_label_embeddings_follow_the_pipeline_to_another_device(small_pipeline):
    before = small_pipeline.class_embeddings(NAMES)
    small_pipeline.to("cpu")  # with a GPU this would be "cuda": the cached tensors must not stay behind
    after = small_pipeline.class_embeddings(NAMES)
    assert after is not before and torch.equal(after, before)  # recomputed on the pipeline's device


def test_query_samplers_and_starts(small_pipeline):
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    one_step = small_pipeline.encode_image(images, num_inference_steps=1, sampler="ddim")
    assert torch.equal(small_pipeline.encode_image(images, num_inference_steps=7, sampler="x0"), one_step)
    zero = [small_pipeline.encode_image(images, 2, start="zero", seed=s) for s in (0, 1)]
    assert torch.equal(zero[0], zero[1])  # no randomness left
    fixed = small_pipeline.encode_image(images[[0, 0]], 2, start="fixed", seed=3)
    # one start vector for every image: two rows of one batch, so equal up to what CPU kernels promise
    assert torch.allclose(fixed[0], fixed[1], atol=1e-5)
    noisy = small_pipeline.encode_image(images[[0, 0]], 2, start="noise", seed=3)
    assert not torch.equal(noisy[0], noisy[1])
    dpm = small_pipeline.encode_image(images, 4, sampler="dpm", guidance_scale=2.0)
    assert dpm.shape == (3, small_pipeline.model.text_dim) and torch.allclose(dpm.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="sampler"):
        small_pipeline.encode_image(images, sampler="euler")


def test_image_prefix_is_reused_exactly(small_pipeline):
    model = small_pipeline.model
    z, e_t, t = torch.rand(2, 1, 16, 16), torch.randn(2, model.text_dim), torch.tensor([999, 10])
    with torch.no_grad():
        prefix = model.image_prefix(z)
        assert prefix.index > 0  # the first level has no attention: its resnets are computed once
        assert torch.equal(model.predict_query(z, e_t, t, prefix), model.predict_query(z, e_t, t))
