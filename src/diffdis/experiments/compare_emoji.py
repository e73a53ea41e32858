"""The comparison study's emoji blocks: the paper's setting scaled down to this machine, on open-vocabulary names.

  emoji-pretrain    a generation-only model (`gen`) trained on the emoji training split, saved as a pipeline
                    folder: the generatively pretrained UNet every emoji-query and emoji-pretrained run starts from
                    (train.init_from). The unseen concepts are held out of it as of every other run.
  emoji-query       does diffusing the query help once the query carries signal? DiffDis with the query diffused
                    at γ = √D/4, √D/2, √D and trained by regression at γ = √D, beside γ = 1 (the paper; those two
                    runs are emoji-pretrained's DiffDis and regression of the same seeds), read on validation
                    only: unseen-validation accuracy by query steps and L_ITA by text timestep
  emoji-pretrained  DiffDis, clip, dis, gen, the regression ablation and DiffDis at the γ chosen in emoji-query,
                    fine-tuned from the pretrained UNet with equal steps
  emoji-scratch     DiffDis, clip, dis, gen with the same steps from nothing

Settings every emoji run shares are the emoji demo's (chosen on validation concepts, docs/emoji.md): attention at
the 4x4 level only, λ = 3, no skin-tone variants. Figures: zero-shot top-1/top-5 among the unseen test concepts,
caption retrieval on them, seen concepts in the unseen style, held-out drawings of seen concepts, generation
judged by a classifier and FID/KID, query cost per image, learning curves on the unseen validation concepts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DEFAULT_GUIDANCE, Config
from ..data.builtin import data_overrides
from ..data.datasets import fixed_subset
from ..data.emoji import GENERATION_TEMPLATE, EmojiData
from ..evaluation.emoji import (
    TextCache,
    classification,
    emoji_generation,
    emoji_judge,
    emoji_zero_shot,
    queries,
)
from .compare_eval import GENERATION_STEPS, ITA_IMAGES, QUERY_GRID, Context, ita_by_timestep

MINILM_DIM = 384  # the width of all-MiniLM-L6-v2's sentence embedding, the query's D
SQRT_D = math.sqrt(MINILM_DIM)  # ≈ 19.6: γ = √D gives the clean query a per-coordinate std of 1, as the noise has
GAMMAS = (1.0, round(SQRT_D / 4, 1), round(SQRT_D / 2, 1), round(SQRT_D, 1))
EMOJI_SETTINGS = (
    *data_overrides("emoji"),
    "model.attention_levels=false,false,true",
    "train.lam=3",
    "train.emoji_skin_tones=false",
)
INITIALISED = ("emoji-query", "emoji-pretrained")  # the blocks that start from the pretrained UNet
EMOJI_MODELS = ("diffdis", "clip", "dis", "gen")
GENERATED_CONCEPTS = 32  # per group (seen, unseen test concepts), two samples each
QUICK_IMAGES, QUICK_CONCEPTS = 24, 4  # EmojiPlan.quick: per evaluation set, per generation group
QUICK_OVERRIDES = ("train.sample_rows=0", "train.val_images=16")  # EmojiPlan.quick: cheap in-training validation


def gamma_name(gamma: float, regression: bool = False) -> str:
    """The study row of DiffDis at query scale γ ("diffdis" / "regression" at the paper's γ = 1)."""
    base = "regression" if regression else "diffdis"
    return base if gamma == 1.0 else f"{base}-gamma-{gamma:g}"


def query_rows() -> tuple[str, ...]:
    """DiffDis at every γ, and regression at the smallest and largest: a regressor reads the query at t_e = T-1,
    where its cosine to the clean query is below 0.01 for every γ <= √D (the linear schedule keeps
    sqrt(ᾱ_T) ≈ 0.0064), so the γ between add nothing to what it can read."""
    return (*(gamma_name(g) for g in GAMMAS), gamma_name(GAMMAS[0], True), gamma_name(GAMMAS[-1], True))


def query_overrides(row: str) -> tuple[str, ...]:
    """The overrides of an emoji-query row."""
    regression = row.startswith("regression")
    gamma = float(row.rsplit("-", 1)[1]) if "-gamma-" in row else 1.0
    return (f"model.gamma={gamma:g}", *(("model.query_training=regression",) if regression else ()))


@dataclass(frozen=True)
class EmojiPlan:
    """How long and how often the emoji blocks train."""

    pretrain_steps: int = 1500
    steps: int = 200  # every fine-tuned and from-scratch run
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    query_seeds: tuple[int, ...] = (0,)
    judge_epochs: int = 12  # of the generation judge, trained once per study process on real drawings
    quick: bool = False  # tests: a few images per evaluation set and generated concepts, to check the plumbing
    # The third edition (docs/study.md, pre-registered): a generator, then the 2 x 2 compute-matched on image
    # presentations: fine-tuned from the generator for finetune_steps, or from scratch for both counts together.
    generator_steps: int = 3000
    finetune_steps: int = 1000
    third_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)


def chosen_gamma(results: dict[str, list[dict]], seeds: tuple[int, ...]) -> float | None:
    """The γ whose diffused query had the best unseen-validation top-1 in emoji-query, each γ read on the same
    `seeds` (the plan's query seeds: the γ = 1 row has more seeds, in emoji-pretrained, and a mean over other seeds
    is not comparable; ties: the paper's smaller γ), or None until every γ is measured on them. `results`: row ->
    list of result records."""
    scores = {}
    for gamma in GAMMAS:
        records = [r for r in results.get(gamma_name(gamma), []) if r["seed"] in seeds]
        if not seeds or len(records) < len(seeds):
            return None
        scores[gamma] = float(np.mean([r["validation"]["top1"] for r in records]))
    return max(GAMMAS, key=lambda g: (round(scores[g], 6), -g))


class EmojiEvaluation:
    """What every emoji run's measurement shares: the data, the judge, the candidates' text embeddings."""

    def __init__(self, ctx: Context, resolution: int, plan: EmojiPlan):
        self.ctx, self.emoji, self.texts = ctx, EmojiData.load(resolution), TextCache()
        self.judge_epochs = plan.judge_epochs
        self.images = QUICK_IMAGES if plan.quick else None  # per evaluation set; None: all of it
        self._judge = None
        concepts = QUICK_CONCEPTS if plan.quick else GENERATED_CONCEPTS
        rng = np.random.default_rng(0)  # the generation prompts: the same seeded concepts for every model
        self.seen_prompts = [int(c) for c in rng.permutation(self.emoji.concepts("train"))[:concepts]]
        self.unseen_prompts = [int(c) for c in rng.permutation(self.emoji.concepts("test"))[:concepts]]

    def judge(self):
        if self._judge is None:
            self._judge = emoji_judge(self.emoji, epochs=self.judge_epochs)
        return self._judge

    def curve_scorer(self):
        """A learning-curve point: unseen-validation top-1 with two query steps (one for one-step models)."""
        val = self._validation()

        def score(pipe) -> dict[str, float]:
            if not pipe.can_discriminate:
                return {}
            query = {"num_inference_steps": 1 if pipe.config.model.one_step_query else 2, "seed": 0}
            found = classification(queries(pipe, val, query), self.texts.classes(pipe, val.class_names), val.labels)
            return {"curve_unseen_top1": found["top1"]}

        return score

    def evaluate(self, pipe, config: Config, run_dir: Path) -> dict:
        """Every emoji figure of one model: the query setting chosen on the unseen validation concepts, then each
        test figure read once."""
        out: dict = {"data": self.emoji.record()}
        if pipe.can_discriminate:
            out.update(self._discrimination(pipe, config, run_dir))
        if pipe.can_generate:
            judge, record = self.judge()
            extractor, cache = self.ctx.extractor, self.ctx.cache_dir
            settings = {"num_inference_steps": GENERATION_STEPS, "guidance_scale": DEFAULT_GUIDANCE, "seed": 0}
            out["generation"] = {
                "judge": record,
                **{
                    group: emoji_generation(
                        pipe, self.emoji, judge, concepts, 2, extractor=extractor, cache_dir=cache, **settings
                    )[1]
                    for group, concepts in (("seen", self.seen_prompts), ("unseen", self.unseen_prompts))
                },
            }
        return out

    def _validation(self):
        val = self.emoji.eval_set("emoji-unseen-val")
        return val if self.images is None else fixed_subset(val, self.images)

    def _discrimination(self, pipe, config: Config, run_dir: Path) -> dict:
        val = self._validation()
        classes = self.texts.classes(pipe, val.class_names)
        tried = {}
        for q in _query_grid(pipe):
            found = classification(queries(pipe, val, {**q, "seed": 0}), classes, val.labels)
            tried[f"steps={q['num_inference_steps']},guidance={q['guidance_scale']}"] = (q, found)
        cost = lambda q: q["num_inference_steps"] * (2 if q["guidance_scale"] != 1.0 else 1)  # noqa: E731
        query, validation = max(tried.values(), key=lambda p: (round(p[1]["top1"], 6), -cost(p[0])))
        by_steps = {}  # the best guidance at each number of query steps
        for q, found in tried.values():
            best = by_steps.get(q["num_inference_steps"])
            by_steps[q["num_inference_steps"]] = max(best or found["top1"], found["top1"])
        began = time.perf_counter()
        test = emoji_zero_shot(pipe, self.emoji, "test", {**query, "seed": 0}, self.texts, self.images)
        seconds = time.perf_counter() - began
        images = sum(test[k]["images"] for k in ("unseen", "seen_heldout_drawings", "unseen_style"))
        out = {
            "query": {
                **query,
                "seed": 0,
                "chosen_on": f"{len(val)} drawings of the {len(val.class_names)} unseen validation concepts",
                "tried": {name: found["top1"] for name, (_, found) in tried.items()},
            },
            "validation": {**{k: v for k, v in validation.items() if k != "correct"}, "top1_by_query_steps": by_steps},
            "test": test,
            "test_ms_per_image": 1000 * seconds / images,  # the query path and scoring; text embeddings shared
        }
        if config.model.declared.text_stream:
            batch = fixed_subset(val, ITA_IMAGES)
            captions = [GENERATION_TEMPLATE.format(batch.class_names[k]) for k in batch.labels]
            out["l_ita_by_t_e"] = ita_by_timestep(pipe, config, batch, captions, run_dir)
        return out


def _query_grid(pipe) -> tuple[dict, ...]:
    """Query settings worth trying: a model whose query is not diffused (clip, regression) answers in one step."""
    return ({"num_inference_steps": 1, "guidance_scale": 1.0},) if pipe.config.model.one_step_query else QUERY_GRID
