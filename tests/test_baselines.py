"""Single-task baselines trained by the same objective, and diffusion-classifier scoring."""

from __future__ import annotations

import pytest
import torch
from helpers import SMALL

from diffdis import DiffDisPipeline, preset
from diffdis.evaluation.diffusion_classifier import diffusion_classifier_scores, spaced_timesteps
from diffdis.objective import DiffDisObjective


@pytest.mark.parametrize("variant", ["diffdis", "gen", "dis", "clip"])
def test_each_variant_builds_and_trains_only_what_it_uses(variant):
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(preset("tiny", SMALL + [f"model.variant={variant}"]))
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train)
    z = torch.randn(6, 1, 16, 16)
    c, e = pipe.text_encoder(["a dress", "a bag", "a coat"] * 2)
    out = objective.loss(z, c, e)
    out["loss"].backward()
    assert (out["l_ig"] > 0) == (variant in ("diffdis", "gen")) and (out["l_ita"] > 0) == (variant != "gen")
    assert hasattr(pipe.model, "blocks") == (variant in ("diffdis", "dis"))  # the text stream
    assert hasattr(objective, "logit_scale") == (variant != "gen")
    # DDP (without find_unused_parameters) needs a gradient for every trainable parameter, at every step
    without = [n for n, p in objective.named_parameters() if p.requires_grad and p.grad is None]
    assert without == []
    frozen = {n.split(".")[2] for n, p in objective.named_parameters() if not p.requires_grad}
    assert frozen == ({"up_blocks", "conv_norm_out", "conv_out"} if variant in ("dis", "clip") else set())
    assert pipe.can_generate == (variant in ("diffdis", "gen")) and pipe.can_discriminate == (variant != "gen")


def test_a_new_variant_is_one_declaration(monkeypatch):
    """A variant registered in config.VARIANTS alone (here: generation plus a pooled clip-style query) is built,
    trained and served by what it declares, with no other change."""
    from diffdis import config

    toy = config.Variant(True, True, config.Answer.POOLED, "generates and pools (a toy)")
    monkeypatch.setitem(config.VARIANTS, "gen-clip", toy)
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(preset("tiny", SMALL + ["model.variant=gen-clip"]))
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train)
    c, e = pipe.text_encoder(["a dress", "a bag", "a coat"] * 2)
    out = objective.loss(torch.randn(6, 1, 16, 16), c, e)
    assert out["l_ig"] > 0 and out["l_ita"] > 0  # both tasks trained
    assert hasattr(pipe.model, "clip_head") and not hasattr(pipe.model, "blocks")  # pooled, no text stream
    assert pipe.can_generate and pipe.can_discriminate and pipe.config.model.one_step_query
    assert pipe.encode_image(torch.zeros(2, 1, 16, 16)).shape == (2, pipe.model.text_dim)
    assert len(pipe.generate(["a dress"], num_inference_steps=2)) == 1


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
    templates = ("a photo of the {}.", "a drawing of a {}.")
    scores = diffusion_classifier_scores(pipe, images, names, templates, timesteps=(200, 600), batch_size=2)
    assert scores.shape == (5, 3)
    # naive reference: one image, one class, one timestep at a time, with the same noise; each class conditioned
    # on its prompts' token states averaged over the templates
    noise = torch.randn(2, *images.shape, generator=torch.Generator().manual_seed(0))
    c = torch.stack([pipe.text_encoder([t.format(n) for t in templates])[0].mean(0) for n in names])
    naive = torch.zeros(5, 3)
    for i in range(5):
        for k in range(3):
            for j, t in enumerate((200, 600)):
                tt = torch.tensor([t])
                z_t = pipe.scheduler.add_noise(images[i : i + 1], noise[j, i : i + 1], tt)
                with torch.no_grad():
                    naive[i, k] -= (pipe.model(z_t, tt, c[k : k + 1]) - noise[j, i : i + 1]).square().mean() / 2
    assert torch.allclose(scores, naive, atol=1e-5)
    assert spaced_timesteps(4, 1000) == (125, 375, 625, 875)  # the centres of four equal parts of the schedule


def test_a_new_sampler_is_one_registration(monkeypatch, small_pipeline):
    """A sampler registered alone (here DDIM with leading spacing) serves both streams and the command line."""
    from diffusers import DDIMScheduler

    from diffdis import samplers
    from diffdis.cli import parser

    def leading(base, prediction_type, clip_sample=False):
        return DDIMScheduler.from_config(base.config, prediction_type=prediction_type, clip_sample=clip_sample), {}

    monkeypatch.setattr(samplers, "SAMPLERS", dict(samplers.SAMPLERS))
    samplers.register_sampler("ddim-leading", samplers.Sampler(leading, samplers.STREAMS, "DDIM, leading spacing"))
    images = small_pipeline.generate(["a dress"], num_inference_steps=3, sampler="ddim-leading")
    q = small_pipeline.encode_image(images, num_inference_steps=3, sampler="ddim-leading")
    assert q.shape == (1, small_pipeline.model.text_dim)
    args = parser().parse_args(["generate", "--model", "m", "--prompt", "a", "--sampler", "ddim-leading", "--out", "o"])
    assert args.sampler == "ddim-leading"
    with pytest.raises(ValueError, match="available: ddim, dpm, ddim-leading"):
        small_pipeline.generate(["a dress"], sampler="euler")
    with pytest.raises(ValueError, match="registered already"):
        samplers.register_sampler("ddim", samplers.SAMPLERS["ddim"])
