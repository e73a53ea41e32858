"""Precomputed encodings for training: the frozen encoders of a saved pipeline or a Stable Diffusion folder run
once over captioned files, so that training reads VAE latents and text states instead of running the encoders at
every epoch (`diffdis encode`)."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..config import apply_overrides, preset
from ..data.files import SampleError, decode_sample, file_source
from ..data.pack import Sample
from ..data.transforms import uint8_to_model
from ..factory import CONFIG_NAME, default_device
from ..pipeline import DiffDisPipeline
from ..specs import parse_data


def encoders(model: str | Path, resolution: int | None = None, device: str | None = None):
    """The pipeline whose encoders `encode` runs: a saved DiffDis pipeline, or a Stable Diffusion folder read with
    the sd preset; at `resolution` when given (default: the model's; SD: 256)."""
    device = device or default_device()
    model = Path(model)
    overrides = [f"model.resolution={resolution}"] if resolution else []
    if (model / CONFIG_NAME).exists():
        pipe = DiffDisPipeline.from_pretrained(model, device)
        pipe.config = apply_overrides(pipe.config, overrides)
        return pipe
    config = preset("sd", [f"train.init_from={model}", *overrides])
    return DiffDisPipeline.from_stable_diffusion(model, config).to(device)


def encoded_samples(pipe, data: str, batch_size: int = 64, skipped: Counter | None = None) -> Iterator[Sample]:
    """Every sample of the file sources in `data`, in storage order, with its encodings by `pipe`'s frozen
    encoders added: latent.npy (VAE posterior moments, float16; only with an AutoencoderKL), text.npy (c,
    float16) and query.npy (e, float32). Undecodable samples are left out and counted in `skipped`."""
    m = pipe.config.model
    skipped = skipped if skipped is not None else Counter()
    sources = [file_source(s) for s in parse_data(data) if not s.named]
    if not sources:
        raise ValueError(f"{data!r} names no file sources (wds:, folder:, csv:); pack built-in sets first")

    def raw() -> Iterator[tuple[dict[str, bytes], dict]]:
        for source in sources:
            for pending in source.epoch(0, 0, 1, 0, lambda reason: skipped.update([reason])):
                try:
                    members = pending.read()
                    yield members, decode_sample(members, m.resolution, m.image_channels)
                except SampleError as error:
                    skipped[error.reason] += 1

    with torch.no_grad():
        for chunk in _chunks(raw(), batch_size):
            captions = [sample["caption"] for _, sample in chunk]
            c, e = pipe.text_encoder(captions)
            images = uint8_to_model(torch.from_numpy(np.stack([sample["image"] for _, sample in chunk])))
            moments = pipe.autoencoder.moments(images.to(pipe.device)) if hasattr(pipe.autoencoder, "moments") else None
            for i, (members, _) in enumerate(chunk):
                out = {k: v for k, v in members.items() if not k.endswith(".npy")}
                out["text.npy"] = _npy(c[i].half())
                out["query.npy"] = _npy(e[i].float())
                if moments is not None:
                    out["latent.npy"] = _npy(moments[i].half())
                yield out


def _npy(tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, tensor.cpu().numpy(), allow_pickle=False)
    return buffer.getvalue()


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
