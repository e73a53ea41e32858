"""The evaluation suite: classification accuracy on every set of a suite, and retrieval on a captioned held-out
set, in one result dictionary that records how each number was made.

Each set is labelled by what the model's training data says about it: `trained` (its classes were training
captions: seen-class accuracy on held-out test images), `held-out compositions` (shapes colour-shape pairs no
training caption showed) or `not trained on` (transfer: zero-shot in the strict sense). Means are taken only
within one of these groups: a mean over seen-class and transfer sets measures nothing in particular."""

from __future__ import annotations

import time

import torch

from ..config import DEFAULT_QUERY_GUIDANCE, DEFAULT_QUERY_STEPS
from ..data.builtin import BUILTIN
from ..data.datasets import FASHION_MNIST_DIR, fixed_subset
from ..data.emoji import EmojiData
from ..data.eval_sets import convert, load_eval_set
from ..data.shapes import load_shapes
from ..data.transforms import uint8_to_model
from ..pipeline import DiffDisPipeline
from ..provenance import environment
from ..samplers import DEFAULT_SAMPLER
from .emoji import emoji_zero_shot
from .zero_shot import zero_shot

SHAPES_SETS = tuple(BUILTIN["shapes"].eval_sets)
SUITES: dict[str, tuple[str, ...]] = {
    "default": ("fashion-mnist", "digits", *SHAPES_SETS),
    "fashion": ("fashion-mnist",),
    "shapes": SHAPES_SETS,
    "emoji": ("emoji-unseen", "emoji-style", "emoji-seen-val"),
    "emoji-val": ("emoji-unseen-val", "emoji-seen-val"),
}
RETRIEVAL_IMAGES = 1000
RELATIONS = ("trained", "held-out compositions", "seen concepts, unseen style", "not trained on")


def relation(set_name: str, config) -> str:
    """What the model's training data was to the evaluation set `set_name` (one of RELATIONS), as the built-in
    training sets declare it; any other set was not trained on."""
    for source in config.train.sources:
        if source.named and source.kind in BUILTIN and set_name in BUILTIN[source.kind].eval_sets:
            return BUILTIN[source.kind].eval_sets[set_name]
    return "not trained on"


def evaluate(
    pipe: DiffDisPipeline,
    suite: str | tuple[str, ...] = "default",
    data_dir: str = FASHION_MNIST_DIR,
    num_inference_steps: int = DEFAULT_QUERY_STEPS,
    guidance_scale: float = DEFAULT_QUERY_GUIDANCE,
    seed: int = 0,
    max_images: int | None = None,
    sampler: str = DEFAULT_SAMPLER,
    start: str = "noise",
) -> dict:
    """Top-1 (and top-5 with more than 5 classes) per set with its relation to the training data, the mean
    top-1 within each relation over the sets that could be loaded (a missing set is recorded with the reason,
    never silently dropped), and retrieval R@1/5/10. `suite`: a named suite (SUITES), set names joined by ',',
    or a tuple of set names."""
    names = (
        SUITES.get(suite) or tuple(n.strip() for n in suite.split(",") if n.strip())
        if isinstance(suite, str)
        else suite
    )
    m = pipe.config.model
    query = {
        "sampler": sampler,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "seed": seed,
        "start": start,
    }
    zero = {}
    for name in names:
        began = time.perf_counter()
        try:
            eval_set = load_eval_set(name, m.resolution, m.image_channels, data_dir, seed)
        except (FileNotFoundError, ImportError) as error:
            zero[name] = {"skipped": str(error)}
            continue
        data = fixed_subset(eval_set.data, max_images) if max_images else eval_set.data
        result = zero_shot(pipe, data, eval_set.templates, **query)
        zero[name] = {
            **result.summary(),
            "relation": relation(name, pipe.config),
            "images": len(data),
            "classes": list(data.class_names),
            "templates": list(eval_set.templates),
            "source": eval_set.source,
            "seconds": time.perf_counter() - began,
        }
    means = {}
    for kind in RELATIONS:
        sets = [n for n, r in zero.items() if r.get("relation") == kind]
        if sets:
            means[kind] = {"mean_top1": sum(zero[n]["top1"] for n in sets) / len(sets), "sets": sets}
    t = pipe.config.train
    out = {
        "training_data": t.data,
        "held_out_classes": list(t.holdout_classes),
        "zero_shot": zero,
        "mean_top1_by_relation": means,
        "retrieval": shapes_retrieval(pipe, query, min(RETRIEVAL_IMAGES, max_images or RETRIEVAL_IMAGES)),
        "query": query,
        "environment": environment(),
    }
    emoji_sets = [n for n in names if n.startswith("emoji-") and "top1" in zero.get(n, {})]
    if emoji_sets:  # the emoji figures in full: generalised, retrieval of held-out concepts, the unseen style
        emoji = EmojiData.load(m.resolution)
        split = "test" if any(n in ("emoji-unseen", "emoji-style") for n in emoji_sets) else "val"
        out["emoji"] = {**emoji_zero_shot(pipe, emoji, split, query), "data": emoji.record()}
    return out


def summary_lines(result: dict) -> list[str]:
    """The suite's result as aligned text lines: what the model trained on, top-1 per set with its relation to
    that (or why it was skipped), the mean within each relation, retrieval."""
    held = result["held_out_classes"]
    lines = [f"trained on: {result['training_data']}" + (f" (classes held out: {', '.join(held)})" if held else "")]
    for name, r in result["zero_shot"].items():
        if "top1" in r:
            lines.append(f"{name:24s} top-1 {r['top1']:6.2f}%  ({r['images']} images; {r['relation']})")
        else:
            lines.append(f"{name:24s} skipped: {r['skipped']}")
    for kind, mean in result["mean_top1_by_relation"].items():
        if len(mean["sets"]) > 1:
            lines.append(f"{'mean top-1, ' + kind:24s} {mean['mean_top1']:6.2f}%  (over {', '.join(mean['sets'])})")
    r = result["retrieval"]
    i2t, t2i = r["image_to_text_R@1"], r["text_to_image_R@1"]
    lines.append(f"{'retrieval (shapes)':24s} R@1 image->text {i2t:.1f}, text->image {t2i:.1f}")
    if "emoji" in result:
        e = result["emoji"]
        r, g = e["unseen_retrieval"], e["generalized"]
        lines.append(
            f"{'emoji unseen (' + e['split'] + ')':24s} top-5 {e['unseen']['top5']:6.2f}%, retrieval R@1 image->name "
            f"{r['image_to_text_R@1']:.1f}, name->image {r['text_to_image_R@1']:.1f}; generalised harmonic mean "
            f"{g['generalized_harmonic_mean']:.1f}"
        )
        for group in ("near", "far", "encoder_seen", "encoder_unseen"):  # ImageNet classes apart, with an encoder
            part = e.get(f"unseen_{group}", {"images": 0})
            if part["images"]:
                name = "emoji " + group.replace("encoder_", "imagenet-") + " (" + e["split"] + ")"
                lines.append(
                    f"{name:24s} top-1 {part['top1']:6.2f}%, top-5 "
                    f"{part['top5']:6.2f}%  ({part['concepts']} concepts, {part['images']} images)"
                )
    return lines


def shapes_retrieval(pipe: DiffDisPipeline, query: dict, n: int, split: str = "test") -> dict:
    """Image<->caption retrieval on `n` scenes of a shapes split (seed: the query's): each image against every
    distinct caption of the split, both directions; identical captions count as relevant to each other."""
    m = pipe.config.model
    shapes = load_shapes(split, n, m.resolution, query["seed"])
    images = uint8_to_model(convert(shapes.images, m.resolution, m.image_channels))
    captions = shapes.captions
    relevance = torch.tensor([[a == b for b in captions] for a in captions])
    metrics = pipe.retrieve(images, captions, relevance=relevance, **query).metrics
    return {
        "set": f"shapes {split} split, {n} images and their captions",
        "images": len(captions),
        "distinct_captions": len(set(captions)),
        **metrics,
    }
