"""Stable Diffusion in and out, on a tiny randomly initialised SD folder built by the test itself (the real CLIP
tokenizer, tiny shapes: diffdis.models.sd_folders)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from diffdis import DiffDisPipeline, preset
from diffdis.config import ConfigError
from diffdis.data.stream import FileBatches
from diffdis.models.sd_folders import build_stable_diffusion, diffusers_images, diffusers_pipeline

SMALL_STREAM = ["model.resolution=32", "model.transformer_width=32", "model.transformer_head_dim=16"]


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return build_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny-sd", "tiny")


@pytest.fixture(scope="module")
def sd_pipe(sd_folder):
    return DiffDisPipeline.from_stable_diffusion(
        sd_folder, preset("sd", [f"train.init_from={sd_folder}", *SMALL_STREAM])
    )


def test_config_shapes_come_from_the_model(sd_pipe, sd_folder):
    m = sd_pipe.config.model
    assert m.block_out_channels == (32, 64) and m.attention_levels == (True, False)
    assert m.attention_heads == (8, 8) and m.text_max_length == 77 and m.beta_schedule == "scaled_linear"
    assert m.text_encoder == str(sd_folder) and sd_pipe.autoencoder.scale == pytest.approx(0.18215)
    assert sd_pipe.config.model.transformer_width == 32  # text-stream settings stay the caller's


def test_generation_equals_stable_diffusion_before_training(sd_pipe, sd_folder):
    from diffusers import UNet2DConditionModel

    reference = UNet2DConditionModel.from_pretrained(sd_folder / "unet")
    z, t = torch.randn(2, 4, 4, 4), torch.tensor([10, 900])
    c, _ = sd_pipe.text_encoder(["a red cube", ""])
    with torch.no_grad():
        assert torch.equal(sd_pipe.model(z, t, c), reference(z, t, encoder_hidden_states=c).sample)

    sd = diffusers_pipeline(sd_folder)
    prompt_embeds, _ = sd.encode_prompt(["a red cube"], "cpu", 1, False)
    assert torch.equal(c[:1], prompt_embeds)  # same condition c, padding states included
    ours = np.stack([np.asarray(im) for im in sd_pipe.generate(["a red cube", "a cat"], 4, 3.0, seed=0)])
    theirs = diffusers_images(sd, ["a red cube", "a cat"], 32, 4, 3.0, seed=0)
    assert np.abs(ours.astype(np.int16) - theirs).max() <= 1  # rounding of the last 8-bit step only


def test_saved_folder_loads_in_diffusers_and_back(sd_pipe, tmp_path):
    with torch.no_grad():
        for p in sd_pipe.model.unet.parameters():  # as if trained: no longer SD's weights
            p.add_(0.01 * torch.randn_like(p))
    sd_pipe.save_pretrained(tmp_path / "out")
    sd = diffusers_pipeline(tmp_path / "out")
    for (name, ours), theirs in zip(sd_pipe.model.unet.state_dict().items(), sd.unet.state_dict().values()):
        assert torch.equal(ours, theirs), name
    ours = np.asarray(sd_pipe.generate(["a cat"], 3, 2.0, seed=0)[0]).astype(np.int16)
    assert np.abs(ours - diffusers_images(sd, ["a cat"], 32, 3, 2.0, seed=0)[0]).max() <= 1

    loaded = DiffDisPipeline.from_pretrained(tmp_path / "out")
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(loaded.encode_image(images), sd_pipe.encode_image(images), atol=1e-5)


def test_refusals(sd_folder, tmp_path):
    pickled = tmp_path / "model.ckpt"
    pickled.write_bytes(b"not really a checkpoint")
    with pytest.raises(ValueError, match="pickled checkpoint.*--trust-pickle"):
        DiffDisPipeline.from_stable_diffusion(pickled)
    with pytest.raises(FileNotFoundError, match="missing unet/"):
        DiffDisPipeline.from_stable_diffusion(tmp_path)
    with pytest.raises(ConfigError, match="--init-from"):
        preset("sd")

    other = tmp_path / "mixed"
    shutil.copytree(sd_folder, other)
    config = json.loads((other / "unet" / "config.json").read_text())
    (other / "unet" / "config.json").write_text(json.dumps({**config, "cross_attention_dim": 64}))
    with pytest.raises(ConfigError, match="cross_attention_dim \\(64\\).*hidden_size \\(32\\)"):
        DiffDisPipeline.from_stable_diffusion(other, preset("sd", [f"train.init_from={other}", *SMALL_STREAM]))


@pytest.mark.slow
def test_train_from_stable_diffusion_on_shards(sd_folder, tmp_path):
    from diffdis.cli import main
    from diffdis.data.pack import pack_samples, write_shards

    write_shards(pack_samples("shapes", 32, limit=64), tmp_path / "shards", shard_size=32)
    settings = [
        "train.data=wds:" + str(tmp_path / "shards" / "{00000..00001}.tar"),
        "train.batch_size=4",
        "train.num_workers=0",
        "train.shuffle_buffer=8",
        "train.validate_every=0",
        "train.mixed_precision=no",
        "train.gradient_checkpointing=true",
        *SMALL_STREAM,
    ]
    command = ["train", "--preset", "sd", "--init-from", str(sd_folder), "--out", str(tmp_path / "run")]
    assert main(command + ["--max-steps", "2", "--no-progress"] + [a for s in settings for a in ("--set", s)]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["text_encoder"] == str(sd_folder) and config["model"]["attention_heads"] == [8, 8]
    trained = DiffDisPipeline.from_pretrained(tmp_path / "run" / "model")
    assert trained.generate(["a red cube"], num_inference_steps=2)[0].size == (32, 32)
    assert (tmp_path / "run" / "model" / "model_index.json").exists()


@pytest.mark.slow
def test_encoded_shards_train_like_raw_ones(sd_pipe, sd_folder, tmp_path):
    from diffdis.cli import main
    from diffdis.data.pack import pack_samples, write_shards
    from diffdis.objective import DiffDisObjective
    from diffdis.training.loop import step_generator

    write_shards(pack_samples("shapes", 32, limit=24), tmp_path / "raw", shard_size=12)
    raw = "wds:" + str(tmp_path / "raw" / "{00000..00001}.tar")
    command = ["encode", "--model", str(sd_folder), "--data", raw, "--out", str(tmp_path / "enc")]
    assert main(command + ["--shard-size", "12", "--resolution", "32"]) == 0  # the raw copy's shard layout
    encoded = "wds:" + str(tmp_path / "enc" / "{00000..00001}.tar")
    batches = {}
    for name, data in (("raw", raw), ("encoded", encoded)):
        config = preset(
            "sd",
            [
                f"train.init_from={sd_folder}",
                f"train.data={data}",
                "train.batch_size=4",
                "train.num_workers=0",
                "train.shuffle_buffer=4",
                *SMALL_STREAM,
            ],
        )
        batches[name] = next(iter(FileBatches(config, 0, 1)))[0]
    assert batches["raw"]["captions"] == batches["encoded"]["captions"]  # same stream, same order
    assert "latent" in batches["encoded"] and "images" not in batches["encoded"]
    device = torch.device("cpu")
    encode = DiffDisObjective.from_pipeline(sd_pipe, sd_pipe.config.train).encode
    z_raw, c_raw, e_raw = encode(batches["raw"], step_generator(0, 0, 0, device))
    z_enc, c_enc, e_enc = encode(batches["encoded"], step_generator(0, 0, 0, device))
    assert torch.allclose(z_raw, z_enc, atol=5e-3) and torch.allclose(c_raw, c_enc, atol=5e-3)  # float16 storage
    assert torch.allclose(e_raw, e_enc, atol=1e-6)
