"""Stable Diffusion v1 folders made here, without a download, and diffusers' own generation from such a folder.

`build_stable_diffusion` writes a diffusers-layout folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/,
model_index.json) with random weights at SD v1's real shapes ("v1": an 859.5M-parameter UNet, an AutoencoderKL
and a CLIP ViT-L/14 text model) or at tiny ones ("tiny", for tests). The tokenizer is the real 49,408-entry
CLIP BPE vocabulary: its merges ship inside the open_clip_torch wheel (scripts/setup.sh installs it without
dependencies; only the data file is read, the package is never imported), and the token table is derived from
them as CLIP defines it: 256 byte symbols, the same with the end-of-word mark, one entry per merge, then the two
special tokens. A full-size folder lets a user (and our benchmarks) run the `sd` preset's exact shapes, dtypes
and memory where SD's weights cannot be downloaded; a model trained from it has learnt nothing from SD.

`diffusers_images` is the reference that DiffDis's generation from an SD folder must reproduce before training:
diffusers' `StableDiffusionPipeline` with the sampler DiffDis uses and the same initial noise.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

CLIP_VOCAB_SIZE = 49408
_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2

SHAPES = {  # UNet, VAE and text-model shapes; everything else is SD v1's
    "v1": {
        "unet": {"block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "sample_size": 64},
        "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "sample_size": 512},
        "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
    },
    "tiny": {
        "unet": {"block_out_channels": (32, 64), "layers_per_block": 1, "sample_size": 8},
        "vae": {"block_out_channels": (32, 32), "layers_per_block": 1, "sample_size": 32},
        "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
    },
}


def clip_bpe_file() -> Path:
    """open_clip's packaged CLIP BPE merges, found without importing the package."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the CLIP BPE merges ship in open_clip_torch, which is not installed: run scripts/setup.sh, or "
            "'pip install --no-deps open_clip_torch==3.3.0'"
        )
    return Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"


def _byte_symbols() -> list[str]:
    """CLIP's reversible byte -> character table, in vocabulary order: printable bytes stand for themselves,
    the other bytes take the characters from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def clip_tokenizer(max_length: int = 77):
    """The CLIP tokenizer of SD v1 (transformers' CLIPTokenizer over the real vocabulary), built locally."""
    import tempfile

    from transformers import CLIPTokenizer

    merges = gzip.open(clip_bpe_file(), "rt", encoding="utf-8").read().split("\n")[1 : _MERGES + 1]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as folder:
        vocab, merges_file = Path(folder) / "vocab.json", Path(folder) / "merges.txt"
        vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        tokenizer = CLIPTokenizer(str(vocab), str(merges_file), model_max_length=max_length)
    if len(tokenizer) != CLIP_VOCAB_SIZE:  # transformers returns a near-empty tokenizer rather than failing
        raise RuntimeError(f"the CLIP tokenizer came out with {len(tokenizer)} tokens instead of {CLIP_VOCAB_SIZE}")
    return tokenizer


def build_stable_diffusion(folder: str | Path, shapes: str = "v1", seed: int = 0) -> Path:
    """Write an SD v1 folder with random weights at `shapes` ("v1" or "tiny") under `folder`; return it."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if shapes not in SHAPES:
        raise ValueError(f"unknown shapes {shapes!r}; choose one of {', '.join(SHAPES)}")
    s = SHAPES[shapes]
    torch.manual_seed(seed)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=CLIP_VOCAB_SIZE,
            max_position_embeddings=77,
            hidden_act="quick_gelu",  # CLIP ViT-L/14's
            bos_token_id=CLIP_VOCAB_SIZE - 2,
            eos_token_id=CLIP_VOCAB_SIZE - 1,
            **s["text"],
        )
    )
    u = s["unet"]
    cross = len(u["block_out_channels"]) - 1  # every level but the lowest attends to the text
    unet = UNet2DConditionModel(
        sample_size=u["sample_size"],
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * cross + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * cross,
        block_out_channels=u["block_out_channels"],
        layers_per_block=u["layers_per_block"],
        cross_attention_dim=s["text"]["hidden_size"],
        attention_head_dim=8,  # SD v1's config names its 8 heads so
        norm_num_groups=32,
    )
    v = s["vae"]
    levels = len(v["block_out_channels"])
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=v["block_out_channels"],
        layers_per_block=v["layers_per_block"],
        latent_channels=4,
        norm_num_groups=32,
        sample_size=v["sample_size"],
        scaling_factor=0.18215,
    )
    scheduler = PNDMScheduler(  # SD v1.5's scheduler_config.json
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return Path(folder)


def diffusers_pipeline(folder: str | Path):
    """diffusers' StableDiffusionPipeline from `folder`, with the sampler DiffDis uses (DDIM, trailing spacing, no
    clipping in latent space)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    sd = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    sd.scheduler = DDIMScheduler.from_config(
        sd.scheduler.config, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"
    )
    sd.set_progress_bar_config(disable=True)
    return sd


def diffusers_images(sd, prompts: list[str], side: int, steps: int, guidance: float, seed: int = 0) -> np.ndarray:
    """(B, side, side, 3) uint8-valued int16 images from diffusers' pipeline `sd`, started from the noise DiffDis's
    `generate(..., seed=seed)` draws."""
    down = 2 ** (len(sd.vae.config.block_out_channels) - 1)
    shape = (len(prompts), sd.unet.config.in_channels, side // down, side // down)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    out = sd(prompts, side, side, latents=noise, num_inference_steps=steps, guidance_scale=guidance, output_type="np")
    return (out.images * 255).round().astype(np.int16)
