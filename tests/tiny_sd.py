"""A tiny, randomly initialised Stable Diffusion v1 folder in diffusers layout, built on the fly (no download).

The tokenizer is the real 49,408-entry CLIP BPE vocabulary: its merges ship inside the open_clip_torch wheel
(installed without dependencies by scripts/setup.sh; only the data file is read, the package is not imported),
and the token table is derived from them the way CLIP defines it: 256 byte symbols, the same with the
end-of-word mark, one entry per merge, then the two special tokens.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
import torch

VOCAB_SIZE = 49408
MERGES = VOCAB_SIZE - 2 * 256 - 2


def _byte_symbols() -> list[str]:
    """CLIP's reversible byte -> character table, in vocabulary order: printable bytes stand for themselves,
    the other bytes take the characters from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def write_clip_tokenizer(folder: Path) -> None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open_clip_torch (for the CLIP BPE merges) is not installed; run scripts/setup.sh")
    bpe = Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe, "rt", encoding="utf-8").read().split("\n")[1 : MERGES + 1]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def build_tiny_sd(folder: Path) -> Path:
    """Write unet/, vae/, text_encoder/, tokenizer/, scheduler/ and model_index.json under `folder`."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    bpe = folder.with_name(folder.name + "-bpe")
    write_clip_tokenizer(bpe)
    tokenizer = CLIPTokenizer(str(bpe / "vocab.json"), str(bpe / "merges.txt"), model_max_length=77)
    assert len(tokenizer) == VOCAB_SIZE
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            eos_token_id=VOCAB_SIZE - 1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,  # heads, as in SD v1's config
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 32),
        latent_channels=4,
        norm_num_groups=32,
        scaling_factor=0.18215,
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
