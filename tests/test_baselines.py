"""Single-task baselines trained by the same objective, and diffusion-classifier scoring."""

from __future__ import annotations

import pytest
import torch
from conftest import SMALL

from diffdis import DiffDisPipeline, preset
from diffdis.evaluation.diffusion_classifier import diffusion_classifier_scores
from diffdis.objective import DiffDisObjective


@pytest.mark.parametrize("variant", ["gen", "dis", "clip"])
def test_each_baseline_trains_only_its_task(variant):
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(preset("tiny", SMALL + [f"model.variant={variant}"]))
    objective = DiffDisObjective(pipe.model, pipe.scheduler, pipe.query, pipe.config.train, variant)
    z = torch.randn(6, 1, 16, 16)
    c, e = pipe.text_encoder(["a dress", "a bag", "a coat"] * 2)
    out = objective(z, c, e)
    out["loss"].backward()
    assert (out["l_ig"] > 0) == (variant == "gen") and (out["l_ita"] > 0) == (variant != "gen")
    stream_grad = pipe.model.blocks[0].fc_in.weight.grad
    assert (stream_grad is not None) == (variant == "dis")
    assert pipe.can_generate == (variant == "gen") and pipe.can_discriminate == (variant != "gen")


def test_baseline_pipelines_refuse_what_they_cannot_do(tmp_path):
    gen = DiffDisPipeline.from_config(preset("tiny", SMALL + ["model.variant=gen"]))
    with pytest.raises(ValueError, match="not trained to discriminate"):
        gen.classify(torch.zeros(2, 1, 16, 16), ["a", "b"])
    clip = DiffDisPipeline.from_config(preset("tiny", SMALL + ["model.variant=clip"]))
    with pytest.raises(ValueError, match="not trained to generate"):
        clip.generate(["a dress"])
    q = clip.encode_image(torch.zeros(3, 1, 16, 16), seed=1)
    assert torch.allclose(q, clip.encode_image(torch.zeros(3, 1, 16, 16), seed=2))  # no noise: one pass
    clip.save_pretrained(tmp_path / "clip")
    assert torch.equal(DiffDisPipeline.from_pretrained(tmp_path / "clip").encode_image(torch.zeros(3, 1, 16, 16)), q)


def test_diffusion_classifier_batches_like_the_naive_loop(small_pipeline):
    pipe = small_pipeline
    images = torch.rand(5, 1, 16, 16) * 2 - 1
    names = ("dress", "bag", "coat")
    scores = diffusion_classifier_scores(pipe, images, names, timesteps=(200, 600), batch_size=2)
    assert scores.shape == (5, 3)
    # naive reference: one image, one class, one timestep at a time, with the same noise
    noise = torch.randn(2, *images.shape, generator=torch.Generator().manual_seed(0))
    c, _ = pipe.text_encoder([f"a photo of the {n}." for n in names])
    naive = torch.zeros(5, 3)
    for i in range(5):
        for k in range(3):
            for j, t in enumerate((200, 600)):
                tt = torch.tensor([t])
                z_t = pipe.scheduler.add_noise(images[i : i + 1], noise[j, i : i + 1], tt)
                with torch.no_grad():
                    naive[i, k] -= (pipe.model(z_t, tt, c[k : k + 1]) - noise[j, i : i + 1]).square().mean() / 2
    assert torch.allclose(scores, naive, atol=1e-5)
