"""DiffDisPipeline: a trained DiffDis model with its text encoder, autoencoder and noise schedule, used from
Python for generation (text -> image) and discrimination (image -> text query -> classify / retrieve).

Saved layout (no pickle anywhere):
    diffdis_config.json            the resolved Config
    unet/                          the image branch, diffusers format
    text_stream.safetensors        text stream, unique transformer, head, null latent, null context
    scheduler/scheduler_config.json
    text_encoder/ tokenizer/ vae/  only when the config names folders (CLIP text encoder, AutoencoderKL)
    README.md                      the model card (model_card.py); measured.json: figures measured on these weights
    model_index.json               with a CLIP text encoder and an AutoencoderKL: the generation part then loads
                                   unchanged in diffusers' StableDiffusionPipeline.from_pretrained
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from PIL import Image

from . import factory
from .config import (
    DEFAULT_GENERATION_STEPS,
    DEFAULT_GUIDANCE,
    DEFAULT_QUERY_GUIDANCE,
    DEFAULT_QUERY_STEPS,
    QUERY_STARTS,
    Answer,
    Config,
)
from .data.captions import EVAL_TEMPLATES, check_labels
from .data.transforms import check_image_batch, images_to_tensor, model_to_pil
from .diffusion import QueryDiffusion, read_out, sample_latents, sample_query
from .familiarity import Familiarity, load_familiarity
from .metrics import recall_at_k, relevance_matrix
from .models.diffdis import DiffDisModel
from .models.encoders import PixelSpace, template_embeddings
from .pretrained import resolve_model
from .samplers import DEFAULT_SAMPLER, sampler_for

ImageBatch = Sequence[Image.Image] | torch.Tensor
LABEL_CACHE_SIZE = 64  # label sets whose embeddings are kept (least recently used dropped): memory stays bounded
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _check_steps(num_inference_steps: int) -> None:
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps={num_inference_steps!r}; give a whole number of at least 1")


def _step_counter(progress: Callable[[int, int], None], total: int) -> Callable[[], None]:
    """A callback for every sampler step that reports (steps done, `total`) to `progress`."""
    done = 0

    def on_step() -> None:
        nonlocal done
        done += 1
        progress(min(done, total), total)

    return on_step


@dataclass
class Prediction:
    """Classification of N images among K classes."""

    class_names: list[str]
    cosines: torch.Tensor  # (N, K) cosine of each image's query with each class embedding
    probabilities: torch.Tensor  # (N, K) softmax of the cosines times the model's trained logit scale

    @property
    def indices(self) -> torch.Tensor:
        """(N,) the most probable class of each image (what `classify` returns)."""
        return self.cosines.argmax(dim=1)

    @property
    def labels(self) -> list[str]:
        return [self.class_names[k] for k in self.indices.tolist()]

    def top_k(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per image, the k most probable (class name, probability) pairs, most probable first."""
        values, indices = self.probabilities.topk(min(k, len(self.class_names)), dim=1)
        return [
            [(self.class_names[j], p) for j, p in zip(row_i.tolist(), row_p.tolist())]
            for row_i, row_p in zip(indices, values)
        ]


@dataclass
class Generation:
    """`generate(..., return_scores=True)`: the chosen image per prompt and every candidate's self-score."""

    images: list[Image.Image]
    scores: torch.Tensor  # (N prompts, K candidates): cosine of each candidate's query with its prompt
    chosen: torch.Tensor  # (N,) the candidate kept for each prompt (the highest score)


@dataclass
class RetrievalResult:
    similarity: torch.Tensor  # (N_images, N_texts) cosine similarity
    metrics: dict[str, float]  # image_to_text_R@{1,5,10}, text_to_image_R@{1,5,10} in percent


class DiffDisPipeline:
    def __init__(self, model: DiffDisModel, text_encoder, autoencoder, scheduler: DDPMScheduler, config: Config):
        self.model = model.eval()
        self.text_encoder = text_encoder
        self.autoencoder = autoencoder
        self.scheduler = scheduler
        self.config = config
        self.query = QueryDiffusion(scheduler, config.model.gamma, config.model.text_prediction)
        self._label_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.dtype = torch.float32  # compute precision of inference (autocast); the weights stay float32
        self.vocabulary: dict | None = None  # what the training captions named (factory.VOCABULARY_NAME), when known
        self._familiarity: Familiarity | None = None

    # ----------------------------------------------------------------------------------------- construction
    # How a pipeline is made and kept is factory.py; these are its user-facing doors.
    @classmethod
    def from_config(cls, config: Config) -> DiffDisPipeline:
        """A new, randomly initialised model of the configured shape (what training starts from)."""
        return cls(*factory.build(config))

    @classmethod
    def from_stable_diffusion(
        cls,
        path: str | Path,
        config: Config | None = None,
        trust_pickle: bool = False,
        convert_dir: str | Path | None = None,
    ) -> DiffDisPipeline:
        """DiffDis initialised from a Stable Diffusion v1.x model: a diffusers folder, a `.safetensors` single
        file (converted once into `convert_dir`), or a pickled `.ckpt` with `trust_pickle=True`.

        The UNet, VAE, CLIP text encoder and noise schedule are SD's; the text stream, unique transformer and
        null latent are new. The generation pass is the UNet's own forward, so before any training it gives
        exactly SD's output. `config` supplies the text-stream and training settings (default: the `sd` preset);
        everything that must agree with the SD weights is read from the model itself.
        """
        return cls(*factory.from_stable_diffusion(path, config, trust_pickle, convert_dir))

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32
    ) -> DiffDisPipeline:
        """Load a saved pipeline onto `device` ("cuda", "cuda:1", "cpu"; `factory.default_device()` picks CUDA
        when there is one). `dtype`: the precision inference computes in (float16 or bfloat16 autocast; float32 =
        none)."""
        *parts, vocabulary = factory.load(path)
        pipe = cls(*parts)
        pipe.vocabulary = vocabulary
        pipe.to(device, dtype)
        pipe._familiarity = load_familiarity(resolve_model(path), vocabulary, pipe.text_encoder, pipe.device)
        return pipe

    def save_pretrained(self, path: str | Path) -> None:
        """Write the folder `from_pretrained` reads (the layout in this module's docstring) and its model card."""
        factory.save(self, path)

    def to(self, device: str | torch.device, dtype: str | torch.dtype | None = None) -> DiffDisPipeline:
        """Move to `device`; with `dtype`, also set the precision inference computes in."""
        if dtype is not None:
            dtype = DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
            if dtype not in DTYPES.values():
                raise ValueError(f"dtype={dtype!r}; use one of {', '.join(DTYPES)}")
            if dtype == torch.float16 and torch.device(device).type == "cpu":
                raise ValueError("float16 inference needs a GPU; on the CPU use bfloat16 or float32")
            self.dtype = dtype
        for module in (self.model, self.text_encoder, self.autoencoder):
            module.to(device)
        self._label_cache.clear()  # its embeddings live on the old device
        self._familiarity = None
        return self

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def can_generate(self) -> bool:
        return self.config.model.declared.generates

    @property
    def can_discriminate(self) -> bool:
        return self.config.model.declared.discriminates

    def _require(self, ability: bool, what: str) -> None:
        if not ability:
            raise ValueError(f"this is a `{self.config.model.variant}` baseline model: it was not trained to {what}")

    @property
    def device(self) -> torch.device:
        return self.model.null_context.device

    # ------------------------------------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """(N, D) L2-normalised text queries e."""
        return self.text_encoder.queries(texts, batch_size)

    def unfamiliar(self, texts: Sequence[str]) -> list[tuple[str, str, float]]:
        """(text, nearest training caption, cosine) for each of `texts` that is less like every training caption
        than any evaluation prompt of a known class name is (familiarity.py). Empty when the model folder does not
        say what it was trained on."""
        if self.vocabulary is None:
            return []
        return self.familiarity().unfamiliar(texts, self.encode_text(list(texts)))

    def familiarity(self) -> Familiarity:
        """What `unfamiliar` compares with: read from the model folder, or computed once from the vocabulary."""
        if self._familiarity is None:
            self._familiarity = Familiarity.of(self.encode_text, self.vocabulary)
        return self._familiarity

    def class_embeddings(self, class_names: Sequence[str], templates: Sequence[str] | None = None) -> torch.Tensor:
        """(K, D): per class, the normalised mean of its normalised template embeddings (computed once per set)."""
        templates = tuple(templates or EVAL_TEMPLATES)
        check_labels(class_names)
        if any("{}" not in t for t in templates):
            raise ValueError(f"every template needs a {{}} for the class name; these have none: {templates}")
        repeated = sorted({n for n in class_names if list(class_names).count(n) > 1})
        if repeated:
            warnings.warn(f"class names given more than once: {repeated}; the first of each wins", stacklevel=3)
        key = (tuple(class_names), templates)
        if key not in self._label_cache:
            self._label_cache[key] = template_embeddings(self.encode_text, class_names, templates)
            if len(self._label_cache) > LABEL_CACHE_SIZE:
                self._label_cache.popitem(last=False)
        self._label_cache.move_to_end(key)
        return self._label_cache[key]

    def cached_label_sets(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """The (labels, templates) whose embeddings are kept, least recently used first (at most
        LABEL_CACHE_SIZE)."""
        return list(self._label_cache)

    # ----------------------------------------------------------------------------------------------- images
    def check_images(self, images: ImageBatch) -> ImageBatch:
        """Refuse what the model cannot read as meant, with the fix; a uint8 tensor (0-255) is converted."""
        return check_image_batch(images, self.config.model.image_channels, self.config.model.resolution)

    def _latents(self, images: ImageBatch) -> torch.Tensor:
        m = self.config.model
        if not isinstance(images, torch.Tensor):
            images = images_to_tensor(list(images), m.resolution, m.image_channels)
        return self.autoencoder.encode(images.to(self.device))

    @torch.no_grad()
    def encode_image(
        self,
        images: ImageBatch,
        num_inference_steps: int = DEFAULT_QUERY_STEPS,
        guidance_scale: float = DEFAULT_QUERY_GUIDANCE,
        seed: int = 0,
        sampler: str = DEFAULT_SAMPLER,
        batch_size: int = 256,
        start: str = "noise",
    ) -> torch.Tensor:
        """(N, D) unit text queries denoised from e_T conditioned on each image (Algorithm 3).

        `images`: PIL images of any mode and size (converted like the training data), or a (N, C, R, R) tensor
        already in [-1, 1]. `sampler`: a query sampler of samplers.SAMPLERS (ddim, dpm, x0 = one evaluation, or one
        you registered). `start`: e_T is
        Gaussian noise per image (noise; image i's depends only on (seed, i), not on the batching), one
        Gaussian vector shared by all images (fixed), or zero, the prior's mean (zero). Never a caption.
        A model trained with model.query_training=regression saw only t_e = T-1 and always reads out in one step.
        """
        self._require(self.can_discriminate, "discriminate (score it with evaluation.diffusion_classifier)")
        images = self.check_images(images)
        _check_steps(num_inference_steps)
        sampler_for(sampler, "query")  # refuses an unknown one, naming the registered ones
        if start not in QUERY_STARTS:
            raise ValueError(f"start={start!r}; use one of {QUERY_STARTS}")
        noise = self._query_noise(len(images), seed, start)
        out = []
        for i in range(0, len(images), batch_size):
            with self._autocast():
                z = self._latents(images[i : i + batch_size])
            out.append(self._queries(z, noise[i : i + batch_size], num_inference_steps, guidance_scale, sampler))
        return torch.cat(out)

    def _query_noise(self, n: int, seed: int, start: str = "noise") -> torch.Tensor:
        """(n, D) e_T: row i depends only on (seed, i) for the Gaussian start."""
        dim, generator = self.model.text_dim, torch.Generator().manual_seed(seed)
        if start == "noise":
            return torch.randn(n, dim, generator=generator)
        first = torch.randn(1, dim, generator=generator) if start == "fixed" else torch.zeros(1, dim)
        return first.expand(n, -1)

    def _queries(
        self,
        z: torch.Tensor,
        noise: torch.Tensor,
        steps: int = DEFAULT_QUERY_STEPS,
        guidance_scale: float = DEFAULT_QUERY_GUIDANCE,
        sampler: str = DEFAULT_SAMPLER,
    ) -> torch.Tensor:
        """(B, D) float32 unit queries of clean latents z from starts `noise`."""
        if self.config.model.regression_query:  # trained at t_e = T-1 only: one read-out
            steps = 1
        with self._autocast():
            if self.config.model.declared.answer is Answer.POOLED:  # one encoder pass, no query diffusion
                return self.model.pooled_query(z)
            e = sample_query(
                self.model, self.query, self.scheduler, z, noise.to(self.device), steps, guidance_scale, sampler
            )
        return F.normalize(e.float(), dim=-1)

    def classify(
        self, images: ImageBatch, class_names: Sequence[str], templates: Sequence[str] | None = None, **kwargs
    ) -> torch.Tensor:
        """(N,) predicted class indices: argmax of cos(ê_0(image), class embedding). kwargs go to encode_image.
        `predict` gives the same decision with probabilities and the top k."""
        return self.scores(images, class_names, templates, **kwargs).argmax(dim=1)

    def predict(
        self, images: ImageBatch, class_names: Sequence[str], templates: Sequence[str] | None = None, **kwargs
    ) -> Prediction:
        """Classification with probabilities: softmax over the classes of the cosines times the logit scale the
        model learned in training (the InfoNCE temperature; CLIP's 1/0.07 for model folders saved before it was
        kept). `.indices` equals `classify`; `.top_k(k)` lists names and probabilities. kwargs: encode_image's."""
        cosines = self.scores(images, class_names, templates, **kwargs).float().cpu()
        return Prediction(list(class_names), cosines, self.probabilities(cosines))

    def probabilities(self, cosines: torch.Tensor) -> torch.Tensor:
        """(N, K) cosines -> probabilities over the K candidates (last dimension): softmax of the cosines times the
        logit scale the model learned in training (the InfoNCE temperature)."""
        return (self.model.logit_scale.float().cpu() * cosines.float().cpu()).softmax(dim=-1)

    def scores(
        self, images: ImageBatch, class_names: Sequence[str], templates: Sequence[str] | None = None, **kwargs
    ) -> torch.Tensor:
        """(N, K) cosine similarities between each image's query and each class embedding."""
        classes = self.class_embeddings(class_names, templates)  # checks the names before the images' compute
        return self.encode_image(images, **kwargs) @ classes.T

    def retrieve(
        self,
        images: ImageBatch,
        texts: Sequence[str],
        relevance: torch.Tensor | Sequence[Sequence[int]] | None = None,
        **kwargs,
    ) -> RetrievalResult:
        """Image<->text retrieval: the similarity of every image to every text, and R@1/5/10 both ways.

        Which texts are correct for an image: by default text i for image i only (so N_images == N_texts and
        identical captions of other images count as misses); or `relevance`, either an (N_images, N_texts) bool
        tensor or, per image, the list of its matching text indices. kwargs go to encode_image."""
        if isinstance(texts, str) or not texts:
            raise ValueError("texts must be a non-empty list of strings")
        relevance = relevance_matrix(relevance, len(images), len(texts))
        similarity = self.encode_image(images, **kwargs) @ self.encode_text(texts).T  # (N_img, N_txt)
        return RetrievalResult(similarity.cpu(), recall_at_k(similarity.cpu(), relevance.cpu()))

    # ------------------------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        prompts: str | Sequence[str],
        num_inference_steps: int = DEFAULT_GENERATION_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        seed: int = 0,
        sampler: str = DEFAULT_SAMPLER,
        batch_size: int = 64,
        candidates: int = 1,
        self_guidance: float = 0.0,
        return_scores: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Image.Image] | Generation:
        """One image per prompt (a single string is one prompt), classifier-free guided (Algorithm 2). Image i
        depends only on (seed, i).

        The model checks its own samples (joint models only):
        - `candidates=K` draws K samples per prompt and keeps the one the model's own discrimination pass scores
          highest: the cosine between the sample's text query (encode_image's defaults, as `classify` uses them)
          and the prompt's text embedding. Candidate 0 of every prompt is the image K=1 gives.
        - `self_guidance=w` adds w times the gradient of that cosine (the one-step query read-out on the
          predicted clean image, from a zero start) to every sampling step: classifier guidance by the model's
          own discriminator. 0 is no guidance.
        `return_scores=True` returns a Generation with every candidate's score and the choice.
        `progress(done, total)` is called after every sampler step, counted over all batches."""
        self._require(self.can_generate, "generate images")
        sampler_for(sampler, "image")  # refuses an unknown one before any work, naming the registered ones
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts={prompts!r}; give a prompt or a non-empty list of prompts (strings)")
        _check_steps(num_inference_steps)
        if not isinstance(candidates, int) or candidates < 1:
            raise ValueError(f"candidates={candidates!r}; give a whole number of at least 1")
        if (candidates > 1 or self_guidance or return_scores) and not self.can_discriminate:
            self._require(False, "score its own samples (candidates, self_guidance, return_scores)")
        n, m = len(prompts), self.config.model
        rows = prompts * candidates  # row j * n + i: candidate j of prompt i
        side = m.resolution // self.autoencoder.downsample
        shape = (len(rows), self.autoencoder.latent_channels, side, side)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        clip = isinstance(self.autoencoder, PixelSpace)  # pixels live in [-1, 1]; latents do not
        scoring = candidates > 1 or return_scores
        query_noise = self._query_noise(len(rows), seed)
        latents, scores = [], []
        on_step = _step_counter(progress, num_inference_steps * -(-len(rows) // batch_size)) if progress else None
        for i in range(0, len(rows), batch_size):
            c, e = self.text_encoder(rows[i : i + batch_size])
            adjust = self._self_guidance(e, self_guidance, clip) if self_guidance else None
            with self._autocast():
                z = sample_latents(
                    self.model,
                    self.scheduler,
                    c,
                    noise[i : i + batch_size].to(self.device),
                    num_inference_steps,
                    guidance_scale,
                    sampler,
                    clip_sample=clip,
                    adjust=adjust,
                    on_step=on_step,
                )
            latents.append(z)
            if scoring:
                query = self._queries(z, query_noise[i : i + batch_size])
                scores.append((query * e.float()).sum(-1).cpu())
        z = torch.cat(latents)
        chosen = torch.zeros(n, dtype=torch.long)
        if scoring:
            table = torch.cat(scores).view(candidates, n).T  # (n, K)
            chosen = table.argmax(dim=1)
            z = z.view(candidates, n, *z.shape[1:])[chosen.to(z.device), torch.arange(n, device=z.device)]
        images = []
        for i in range(0, n, batch_size):
            with self._autocast():
                decoded = self.autoencoder.decode(z[i : i + batch_size])
            images += model_to_pil(decoded.float())
        return Generation(images, table, chosen) if return_scores else images

    def _self_guidance(self, e: torch.Tensor, weight: float, clip: bool):
        """The step adjustment of classifier guidance by the model's own discriminator: ε - w·sqrt(1-ᾱ_t)·∇_z cos,
        where cos is between the prompt's query e and the one-step query read-out (zero start, t_e = T-1) of the
        clean image predicted from z_t (ε held fixed, so the gradient flows through the discrimination pass only)."""
        alphas = self.scheduler.alphas_cumprod.to(self.device)
        target = e.float().detach()

        def adjust(z_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
            a = alphas[t].to(z_t.dtype)
            with torch.enable_grad():
                z = z_t.detach().requires_grad_(True)
                x0 = (z - (1 - a).sqrt() * eps.detach()) / a.sqrt()
                if clip:
                    x0 = x0.clamp(-1, 1)
                start = torch.zeros(len(z), self.model.text_dim, device=z.device, dtype=z.dtype)
                cosine = (read_out(self.model, self.query, x0, start) * target).sum()
                (grad,) = torch.autograd.grad(cosine, z)
            return eps - weight * (1 - a).sqrt() * grad

        return adjust
