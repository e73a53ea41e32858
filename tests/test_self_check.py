"""One model that checks itself: candidates re-ranked by the model's own discrimination pass, self-guidance,
and classification with probabilities."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from diffdis import DiffDisPipeline
from diffdis.data.transforms import model_to_pil
from diffdis.diffusion import sample_latents

PROMPTS = ["a photo of a dress.", "a photo of a bag."]


def _pixels(images):
    return [im.tobytes() for im in images]


def test_one_candidate_is_the_plain_sampler(small_pipeline):
    pipe = small_pipeline
    noise = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    c, _ = pipe.text_encoder(PROMPTS)
    z = sample_latents(pipe.model, pipe.scheduler, c, noise, 3, 3.0, "ddim", clip_sample=True)
    expected = model_to_pil(pipe.autoencoder.decode(z))
    assert _pixels(pipe.generate(PROMPTS, 3, seed=3, candidates=1)) == _pixels(expected)


def test_candidates_keep_the_best_self_score(small_pipeline):
    pipe, k = small_pipeline, 3
    best = pipe.generate(PROMPTS, 3, seed=1, candidates=k, return_scores=True)
    # every candidate alone: row j * n + i of the same seed is candidate j of prompt i
    alone = pipe.generate(PROMPTS * k, 3, seed=1, return_scores=True)
    assert torch.equal(best.scores, alone.scores.view(k, len(PROMPTS)).T)
    assert torch.equal(best.chosen, best.scores.argmax(dim=1))
    for i, j in enumerate(best.chosen.tolist()):
        assert _pixels([best.images[i]]) == _pixels([alone.images[j * len(PROMPTS) + i]])
    again = pipe.generate(PROMPTS, 3, seed=1, candidates=k, return_scores=True)
    assert torch.equal(again.scores, best.scores)  # deterministic per seed
    assert best.scores.abs().max() <= 1.0 + 1e-5  # cosines


def test_self_guidance_raises_the_self_score(small_pipeline):
    """Weight 0 is the plain sampler; a positive weight climbs the cosine between the prompt and the one-step
    read-out of the sample, so the finished samples score higher by the model's own discrimination."""
    pipe = small_pipeline
    plain = pipe.generate(PROMPTS, 3, seed=0, return_scores=True)
    assert _pixels(pipe.generate(PROMPTS, 3, seed=0, self_guidance=0.0)) == _pixels(plain.images)
    guided = pipe.generate(PROMPTS, 3, seed=0, self_guidance=50.0, return_scores=True)
    assert (guided.scores > plain.scores).all(), (guided.scores, plain.scores)


def test_generation_only_models_cannot_score_their_samples(small_config):
    import dataclasses

    gen = DiffDisPipeline.from_config(
        dataclasses.replace(small_config, model=dataclasses.replace(small_config.model, variant="gen"))
    )
    with pytest.raises(ValueError, match="score its own samples"):
        gen.generate(PROMPTS, 2, candidates=2)
    with pytest.raises(ValueError, match="at least 1"):
        gen.generate(PROMPTS, 2, candidates=0)


def test_probabilities_sum_to_one_and_rank_like_the_cosines(small_pipeline, tmp_path):
    images = torch.rand(5, 1, 16, 16) * 2 - 1
    names = ["dress", "bag", "coat", "sandal", "shirt", "sneaker"]
    prediction = small_pipeline.predict(images, names)
    assert torch.allclose(prediction.probabilities.sum(1), torch.ones(5))
    assert torch.equal(prediction.probabilities.argsort(1), prediction.cosines.argsort(1))
    assert torch.equal(prediction.indices, small_pipeline.classify(images, names))
    top = prediction.top_k(3)
    assert len(top) == 5 and [name for name, _ in top[0]][0] == prediction.labels[0]
    assert top[0][0][1] >= top[0][1][1] >= top[0][2][1]

    small_pipeline.model.logit_scale.fill_(42.0)  # what training exports
    small_pipeline.save_pretrained(tmp_path / "m")
    assert DiffDisPipeline.from_pretrained(tmp_path / "m").model.logit_scale.item() == pytest.approx(42.0)
    stream = load_file(tmp_path / "m" / "text_stream.safetensors")
    del stream["logit_scale"]  # a folder saved before the scale was exported
    save_file(stream, tmp_path / "m" / "text_stream.safetensors")
    assert DiffDisPipeline.from_pretrained(tmp_path / "m").model.logit_scale.item() == pytest.approx(1 / 0.07)


def test_the_command_line_uses_them(small_pipeline, tmp_path, capsys):
    from PIL import Image

    from diffdis.cli import main

    small_pipeline.save_pretrained(tmp_path / "model")
    model = str(tmp_path / "model")
    argv = ["generate", "--model", model, "--prompt", "a bag", "--num-images", "2", "--steps", "2"]
    assert main([*argv, "--candidates", "2", "--self-guidance", "1", "--out", str(tmp_path / "g")]) == 0
    assert len(list((tmp_path / "g").glob("0*.png"))) == 2
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("L", (16, 16), 200).save(folder / "x.png")
    classify = ["classify", "--model", model, "--images", str(folder), "--labels", "dress,bag,coat", "--top-k", "3"]
    assert main(classify) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1].split("\t")
    assert len(line) == 4 and sum(float(cell.split()[-1]) for cell in line[1:]) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.slow
def test_the_self_check_experiment_writes_every_setting_and_resumes(tmp_path, idx_dir, monkeypatch):
    from helpers import run_overrides

    from diffdis import preset
    from diffdis.data.vocabulary import vocabulary_record
    from diffdis.experiments import self_check

    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_config(preset("tiny", run_overrides(idx_dir)))
    pipe.vocabulary = vocabulary_record("varied")
    pipe.save_pretrained(tmp_path / "model")
    monkeypatch.setattr(self_check, "SETTINGS", {"plain": {}, "candidates 2": {"candidates": 2}})
    monkeypatch.setattr(self_check, "BASE", {"num_inference_steps": 2, "guidance_scale": 3.0})
    results = self_check.run(tmp_path / "model", tmp_path / "out", per_class=1, data_dir=str(idx_dir))
    assert (
        set(results["settings"]) == {"plain", "candidates 2"} and results["settings"]["candidates 2"]["candidates"] == 2
    )
    assert (
        len(results["settings"]["plain"]["judged"]["per_class"]) == 10
        and "fid" in results["settings"]["plain"]["fid_kid"]
    )
    assert set(results["cost"]["per_setting"]) == {"plain", "candidates 2"}
    monkeypatch.setattr(self_check, "measure_fashion", lambda *a, **k: pytest.fail("a finished setting was redone"))
    self_check.run(tmp_path / "model", tmp_path / "out", per_class=1, data_dir=str(idx_dir))


@pytest.mark.slow
def test_the_self_check_of_a_shapes_model_judges_attributes(tmp_path, monkeypatch):
    from helpers import SMALL

    from diffdis import preset
    from diffdis.experiments import self_check

    torch.manual_seed(0)
    config = preset("tiny", [*SMALL, "train.data=shapes", "model.image_channels=3", "train.val_size=32"])
    DiffDisPipeline.from_config(config).save_pretrained(tmp_path / "model")
    monkeypatch.setattr(self_check, "SETTINGS", {"plain": {}, "guidance 5": {"guidance_scale": 5.0}})
    monkeypatch.setattr(self_check, "BASE", {"num_inference_steps": 2, "guidance_scale": 3.0})
    with pytest.raises(ValueError, match="unknown settings \\['guidance 9'\\]"):
        self_check.run(tmp_path / "model", tmp_path / "out", settings=("plain", "guidance 9"))
    results = self_check.run(tmp_path / "model", tmp_path / "out", per_class=1, settings=("plain",))
    assert set(results["settings"]) == set(results["cost"]["per_setting"]) == {"plain"}  # only the chosen one
    judged = results["settings"]["plain"]["judged"]
    assert {"colour", "shape"} <= set(judged["per_attribute"]) and 0 <= judged["generation_accuracy"] <= 100
    assert results["judge"].startswith("exact pixel judge")
