"""The comparison study's measurements of one trained model: settings chosen on its validation split, then each
reported figure read once from a test split (or the shapes `heldout` split).

- Fashion-MNIST: seen-class top-1; with classes held out of training, unseen-class top-1 (among the unseen
  classes only) and the generalized figures (all classes as candidates); per-image correctness is kept, so
  that two models are compared on the images both scored. Generation: FID/KID and judged accuracy per class.
  Diffusion-Classifier scoring of generating models at 8 and 32 timesteps. L_ITA by text timestep on validation images.
- shapes: colour and shape accuracy on held-out compositions and on the test scenes that no training scene
  equals (the overlap is reported), caption retrieval R@1/5/10 on held-out compositions, judged generation of
  held-out compositions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Answer, Config
from ..data.builtin import holdout_indices
from ..data.captions import EVAL_TEMPLATES_BY_SET, TRAIN_TEMPLATES
from ..data.datasets import (
    FASHION_MNIST_CLASSES,
    LabelledImages,
    fixed_subset,
    fixed_subset_indices,
    load_fashion_mnist,
)
from ..data.eval_sets import convert, load_eval_set
from ..data.shapes import Shapes, load_shapes
from ..data.sources import validation_set
from ..data.transforms import uint8_to_model
from ..evaluation.diffusion_classifier import diffusion_classifier_scores, spaced_timesteps
from ..evaluation.fid import InceptionFeatures, fid_kid
from ..evaluation.judge import cached_judge, class_samples, score_generations
from ..evaluation.shapes_judge import shapes_generation_accuracy
from ..evaluation.suite import shapes_retrieval
from ..evaluation.zero_shot import among_unseen, top1_record, unseen_class_accuracy
from ..objective import DiffDisObjective
from ..pipeline import DiffDisPipeline

QUERY_GRID = tuple({"num_inference_steps": s, "guidance_scale": g} for s in (1, 2, 8) for g in (1.0, 2.0))
GUIDANCE_GRID = (1.5, 3.0, 5.0)  # classifier-free guidance of generation, chosen by validation KID
GENERATION_STEPS = 25  # DDIM steps of every generated image in the study (the same for every model)
DC_TIMESTEPS = (8, 32)
T_E_BUCKETS = 4
ITA_IMAGES = 256  # validation images (one batch) of the L_ITA-by-t_e measurement


@dataclass
class Budget:
    """How many images each measurement reads."""

    eval_images: int = 2000  # classification test images (Fashion-MNIST) and shapes sets
    val_images: int = 1000  # validation images for choosing query settings
    fid_images: int = 250  # generated and real images for test FID/KID (and the judge); Inception: ~6 images/s here
    val_fid_images: int = 50  # per guidance value, for choosing it on validation (KID: unbiased at small n)
    dc_images: int = 100  # Diffusion-Classifier test images at 8 timesteps (a quarter of them at 32)
    curve_images: int = 300  # validation images per learning-curve point
    curve_samples: int = 10  # generated images per class per learning-curve point (judged)
    cost_rounds: int = 3  # alternating timing of the classification paths
    cost_images: int = 256  # test images per timed query path (a sixteenth of them per Diffusion Classifier)

    @classmethod
    def scaled(cls, eval_images: int, fid_images: int, dc_images: int) -> Budget:
        """The test counts given; validation counts follow them (never more than the defaults)."""
        return cls(
            eval_images=eval_images,
            fid_images=fid_images,
            dc_images=dc_images,
            val_images=min(1000, eval_images),
            val_fid_images=min(50, fid_images),
            curve_images=min(300, eval_images),
        )


@dataclass
class Context:
    """What the measurements share across models: the budget, caches, the Inception network, the judge."""

    budget: Budget
    cache_dir: Path
    extractor: InceptionFeatures
    seed: int = 0  # evaluation seed (query noise, sample noise): the same for every model

    def judge(self, config: Config):
        m = config.model
        train = load_fashion_mnist("train", m.resolution, m.image_channels, config.train.data_dir)
        test = load_fashion_mnist("test", m.resolution, m.image_channels, config.train.data_dir)
        return cached_judge("fashion-mnist", train, test, self.cache_dir)


# ------------------------------------------------------------------------------- validation: choices, curves
def seen_only(data: LabelledImages, unseen: Sequence[int]) -> LabelledImages:
    """The images of seen classes, relabelled among the seen classes only (tuning never looks at unseen ones)."""
    seen = [k for k in range(len(data.class_names)) if k not in set(unseen)]
    keep = torch.nonzero(torch.isin(data.labels, torch.tensor(seen))).flatten()
    relabel = torch.full((len(data.class_names),), -1, dtype=torch.long)
    relabel[seen] = torch.arange(len(seen))
    subset = data.subset(keep)
    return LabelledImages(subset.images, relabel[subset.labels], tuple(data.class_names[k] for k in seen))


def _top1(pipe, data: LabelledImages, templates, query: dict) -> torch.Tensor:
    """Per-image correctness (N,) bool of the query path."""
    scores = pipe.scores(uint8_to_model(data.images), data.class_names, templates, **query).cpu()
    return scores.argmax(1) == data.labels


def choose_query(pipe, val: LabelledImages, seed: int) -> tuple[dict, dict]:
    """The query steps and guidance with the best validation top-1 (ties: the cheaper one), and every score."""
    if pipe.config.model.one_step_query:
        return {"num_inference_steps": 1, "guidance_scale": 1.0}, {}
    tried = {}
    for query in QUERY_GRID:
        tried[f"steps={query['num_inference_steps']},guidance={query['guidance_scale']}"] = (
            query,
            100.0 * _top1(pipe, val, None, {**query, "seed": seed}).float().mean().item(),
        )
    cost = lambda q: q["num_inference_steps"] * (2 if q["guidance_scale"] != 1.0 else 1)  # noqa: E731
    best = max(tried.values(), key=lambda pair: (round(pair[1], 6), -cost(pair[0])))[0]
    return best, {name: accuracy for name, (_, accuracy) in tried.items()}


def choose_guidance(pipe, val: LabelledImages, ctx: Context, key: str) -> tuple[float, dict]:
    """The generation guidance with the lowest KID against validation images."""
    per_class = max(1, ctx.budget.val_fid_images // len(val.class_names))
    real = fixed_subset(val, ctx.budget.val_fid_images).images
    kids = {}
    for scale in GUIDANCE_GRID:
        fake, _, _ = class_samples(pipe, val.class_names, per_class, ctx.seed, GENERATION_STEPS, scale)
        subset = min(50, len(fake), len(real))
        figures = fid_kid(
            real, fake, cache_dir=ctx.cache_dir, real_key=key, kid_subset=subset, extractor=ctx.extractor, fid=False
        )
        kids[scale] = figures["kid_mean"]
    return min(kids, key=kids.get), {str(k): v for k, v in kids.items()}


def curve_scorer(config: Config, ctx: Context, unseen: Sequence[int]):
    """A learning-curve point for train(scorers=...), beside the validation's own seen-class top-1: with classes
    held out, seen and unseen validation accuracy; else judged accuracy of 10 samples per class."""
    val = fixed_subset(validation_set(config), ctx.budget.curve_images)
    judge = ctx.judge(config)[0] if config.model.declared.generates and not unseen else None

    def score(pipe: DiffDisPipeline) -> dict[str, float]:
        out = {}
        if pipe.can_discriminate and unseen:
            steps = 1 if pipe.config.model.declared.answer is Answer.POOLED else 2
            query = {"num_inference_steps": steps, "seed": ctx.seed}
            scores = pipe.scores(uint8_to_model(val.images), val.class_names, None, **query).cpu()
            figures = unseen_class_accuracy(scores, val.labels, unseen)
            out.update(curve_seen_top1=figures["generalized_seen_top1"], curve_unseen_top1=figures["unseen_top1"])
        if judge is not None:
            fake, target, _ = class_samples(pipe, val.class_names, ctx.budget.curve_samples, ctx.seed, GENERATION_STEPS)
            out["curve_judged"] = score_generations(judge, fake, target, val.class_names)["generation_accuracy"]
        return out

    return score


# --------------------------------------------------------------------------------------------- Fashion-MNIST
def evaluate_fashion(pipe, config: Config, ctx: Context, run_dir: Path, generation: bool = True) -> dict:
    """Every Fashion-MNIST figure of one model (see the module docstring); `generation=False` leaves out the
    generation figures (for ablations that change only the query)."""
    m, t, b = config.model, config.train, ctx.budget
    unseen = holdout_indices(t.holdout_classes, FASHION_MNIST_CLASSES)
    val = validation_set(config)
    test_set = load_eval_set("fashion-mnist", m.resolution, m.image_channels, t.data_dir, ctx.seed)
    test = fixed_subset(test_set.data, b.eval_images)
    positions = fixed_subset_indices(len(test_set.data), b.eval_images).tolist()
    out: dict = {"unseen_classes": [test.class_names[k] for k in unseen]}
    if pipe.can_discriminate:
        tune = fixed_subset(seen_only(val, unseen) if unseen else val, b.val_images)
        query, tried = choose_query(pipe, tune, ctx.seed)
        out["query"] = {**query, "seed": ctx.seed, "chosen_on": f"{len(tune)} validation images", "tried": tried}
        began = time.perf_counter()
        scores = pipe.scores(uint8_to_model(test.images), test.class_names, test_set.templates, **query, seed=ctx.seed)
        out["classification"] = _classification(scores.cpu(), test, unseen, time.perf_counter() - began, positions)
        if m.declared.text_stream:
            batch = fixed_subset(val, ITA_IMAGES)  # the images (and seeded captions) the first edition measured
            out["l_ita_by_t_e"] = ita_by_timestep(pipe, config, batch, training_captions(batch), run_dir)
    if pipe.can_generate:
        # With classes held out the question is zero-shot transfer: the gen baseline's Diffusion Classifier at
        # 8 timesteps. Without, generation quality and both Diffusion-Classifier budgets.
        if not unseen and generation:
            out["generation"] = _generation(pipe, val, test_set.data, ctx, config)
        if not unseen or not m.declared.discriminates:
            budgets = DC_TIMESTEPS if not unseen else DC_TIMESTEPS[:1]
            out["diffusion_classifier"] = {
                str(n): _diffusion_classifier(pipe, test_set, unseen, n, ctx) for n in budgets
            }
    return out


def _classification(
    scores: torch.Tensor, test: LabelledImages, unseen: Sequence[int], seconds: float, positions: list[int]
) -> dict:
    """Top-1 and per-image correctness; `positions`: each image's index in the test set (for pairing)."""
    correct = scores.argmax(1) == test.labels
    out = {
        **top1_record(correct, len(test.class_names)),
        "positions": positions,
        "classes": len(test.class_names),
        "correct": correct.int().tolist(),
        "seconds_per_image": seconds / len(test),
        "templates": "evaluation templates of the set (class embeddings averaged over them)",
    }
    if unseen:
        out.update(unseen_class_accuracy(scores, test.labels, unseen))
        is_unseen, restricted = among_unseen(scores, test.labels, unseen)
        out["unseen_correct"] = (restricted == test.labels[is_unseen]).int().tolist()
        out["unseen_positions"] = [p for p, u in zip(positions, is_unseen.tolist()) if u]
    return out


def _generation(pipe, val: LabelledImages, test: LabelledImages, ctx: Context, config: Config) -> dict:
    b = ctx.budget
    guidance, tried = choose_guidance(pipe, val, ctx, f"fashion-val-seed{config.train.seed}")
    per_class = max(1, b.fid_images // len(test.class_names))
    fake, target, settings = class_samples(pipe, test.class_names, per_class, ctx.seed, GENERATION_STEPS, guidance)
    real = fixed_subset(test, b.fid_images).images
    fid = fid_kid(real, fake, cache_dir=ctx.cache_dir, real_key="fashion-test", kid_subset=100, extractor=ctx.extractor)
    judge, record = ctx.judge(config)
    return {
        **settings,
        "guidance_chosen_on": f"validation KID, {b.val_fid_images} images per value",
        "guidance_tried": tried,
        "fid": fid,
        **score_generations(judge, fake, target, test.class_names),
        "judge": record,
    }


def per_template_check(pipe, config: Config, recorded: dict, n: int = 8, seed: int = 0) -> dict:
    """The Diffusion Classifier of a retrained study model at n timesteps, on the same test images as its record:
    conditioned on token states averaged over the templates (as the study scores it: `recorded` is its figure)
    and on each template alone with the errors averaged."""
    m = config.model
    test_set = load_eval_set("fashion-mnist", m.resolution, m.image_channels, config.train.data_dir, seed)
    data = fixed_subset(test_set.data, recorded["images"])
    images, timesteps = uint8_to_model(data.images), spaced_timesteps(n, m.num_train_timesteps)
    out = {
        "timesteps": n,
        "images": len(data),
        "templates": list(test_set.templates),
        "recorded_top1": recorded["top1"],
    }
    for name, per_template in (("averaged_condition", False), ("per_template_errors", True)):
        scores = diffusion_classifier_scores(
            pipe, images, data.class_names, test_set.templates, timesteps, seed=seed, per_template=per_template
        )
        out[name] = {"top1": 100.0 * (scores.argmax(1) == data.labels).float().mean().item()}
    return out


def _diffusion_classifier(pipe, test_set, unseen: Sequence[int], n: int, ctx: Context) -> dict:
    size = ctx.budget.dc_images if n <= 8 else max(1, ctx.budget.dc_images // 4)  # its cost grows with n
    data = fixed_subset(test_set.data, size)
    timesteps = spaced_timesteps(n, pipe.config.model.num_train_timesteps)
    began = time.perf_counter()
    scores = diffusion_classifier_scores(
        pipe, uint8_to_model(data.images), data.class_names, test_set.templates, timesteps, seed=ctx.seed
    )
    positions = fixed_subset_indices(len(test_set.data), size).tolist()
    out = _classification(scores, data, unseen, time.perf_counter() - began, positions)
    out["templates"] = "evaluation templates of the set (each class's token states averaged over them)"
    return {**out, "timesteps": list(timesteps), "unet_evaluations_per_image": n * len(data.class_names)}


def training_captions(val: LabelledImages) -> list[str]:
    """One training-template caption per image (seeded), as the model saw its classes named in training."""
    rng = np.random.default_rng(0)
    return [TRAIN_TEMPLATES[rng.integers(len(TRAIN_TEMPLATES))].format(val.class_names[k]) for k in val.labels]


@torch.no_grad()
def ita_by_timestep(pipe, config: Config, data: LabelledImages, captions: list[str], run_dir: Path) -> dict:
    """L_ITA on one batch of validation images and their `captions` with every text timestep pinned to the
    centre of each of T_E_BUCKETS buckets (the run's final logit scale): how much the loss depends on t_e."""
    objective = DiffDisObjective.from_pipeline(pipe, config.train)
    logged = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    objective.logit_scale.fill_(float(np.log(logged[-1]["logit_scale"])))
    z, _, e = objective.encode({"images": data.images, "captions": captions})
    T = pipe.config.model.num_train_timesteps
    out = {}
    for k in range(T_E_BUCKETS):
        t = int((k + 0.5) * T / T_E_BUCKETS)
        t_e = torch.full((len(z),), t, dtype=torch.long, device=z.device)
        noise = torch.randn(e.shape, generator=torch.Generator().manual_seed(k)).to(e)
        out[f"t_e={t}"] = objective.query_loss(z, e, t_e, noise).item()
    return out


# ---------------------------------------------------------------------------------------------------- shapes
def evaluate_shapes(pipe, config: Config, ctx: Context) -> dict:
    """Compositional transfer of a shapes-trained model (see the module docstring)."""
    m, b = config.model, ctx.budget
    out: dict = {}
    if pipe.can_discriminate:
        val = fixed_subset(validation_set(config), b.val_images)
        query, tried = choose_query(pipe, val, ctx.seed)
        query = {**query, "seed": ctx.seed}
        out["query"] = {**query, "chosen_on": f"{len(val)} validation images (shape)", "tried": tried}
        untrained = _untrained_test_scenes(config, ctx)
        for attribute in ("colour", "shape"):
            held = load_eval_set(f"shapes-heldout-{attribute}", m.resolution, m.image_channels, seed=ctx.seed)
            data = fixed_subset(held.data, b.eval_images)
            positions = fixed_subset_indices(len(held.data), b.eval_images).tolist()
            correct = _top1(pipe, data, held.templates, query)
            out[f"heldout_{attribute}"] = {
                **top1_record(correct, len(data.class_names)),
                "correct": correct.int().tolist(),
                "positions": positions,
            }
            out[f"test_unseen_scenes_{attribute}"] = _disjoint_test(pipe, config, untrained, attribute, query)
        out["heldout_retrieval"] = shapes_retrieval(pipe, query, b.eval_images, "heldout")
    if pipe.can_generate:
        out["generation"] = shapes_generation_accuracy(
            pipe, min(200, b.fid_images), GENERATION_STEPS, seed=ctx.seed, split="heldout"
        )
    return out


def _untrained_test_scenes(config: Config, ctx: Context) -> tuple[Shapes, float]:
    """The shapes test scenes that no training scene of this run equals (the rest would be partly memorisation),
    and the fraction that overlapped."""
    m, t = config.model, config.train
    trained = load_shapes("train", t.shapes_size, m.resolution, t.seed)
    return load_shapes("test", ctx.budget.eval_images, m.resolution, ctx.seed).without(trained)


def _disjoint_test(pipe, config: Config, untrained: tuple[Shapes, float], attribute: str, query: dict) -> dict:
    """Attribute accuracy on the untrained test scenes, with the fraction of test scenes left out."""
    m = config.model
    test, overlap = untrained
    data = test.attribute_set(attribute)
    data = LabelledImages(convert(data.images, m.resolution, m.image_channels), data.labels, data.class_names)
    correct = _top1(pipe, data, EVAL_TEMPLATES_BY_SET[f"shapes-{attribute}"], query)
    return {**top1_record(correct, len(data.class_names)), "overlap_fraction": overlap}
