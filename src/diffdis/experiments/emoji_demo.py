"""The emoji demo: train the tiny preset on the emoji set, then measure what DiffDis is for: zero-shot
classification and retrieval of concepts no training caption named, seen concepts in a style never trained on,
and generation from names, judged by an independent classifier.

Everything lands in one folder (default runs/demo-emoji): the run, model/, samples.png (seen and unseen
prompts), results.json (every figure with how it was made) and a summary table on stdout. The validation
figures (unseen validation concepts) are those the demo's settings were chosen on; the test figures are read
once, here, and reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import DEFAULT_GENERATION_STEPS, DEFAULT_GUIDANCE, preset
from ..data.emoji import GENERATION_TEMPLATE, EmojiData
from ..evaluation.emoji import emoji_generation, emoji_judge, emoji_zero_shot
from ..evaluation.fid import InceptionFeatures
from ..model_card import write_model_card
from ..pipeline import DiffDisPipeline
from ..provenance import code_version, environment
from ..training import train
from ..utils.images import image_grid
from ..utils.results import table, write_json
from .demo import model_record
from .emoji_settings import EMOJI_DEMO_OVERRIDES
from .lit_baseline import run_lit

GENERATION = {"num_inference_steps": DEFAULT_GENERATION_STEPS, "guidance_scale": DEFAULT_GUIDANCE, "seed": 0}
# The best of 8 samples by the model's own discrimination pass, at guidance 5: chosen on 96 seen concepts no figure
# of record prompts (runs/emoji-tuning/generation-emoji-16.json: judged 17.7% against 9.4% for GENERATION)
SELF_CHECKED = {**GENERATION, "guidance_scale": 5.0, "candidates": 8}
GRID_CONCEPTS = 8  # per group (seen, unseen) in samples.png
GRID_SAMPLES = 6
JUDGED_CONCEPTS = 48  # per group, two samples each
JUDGE_EPOCHS = 12
LIT_INPUT_SIZE = None  # the image encoder's own (224 px); tests use less


def run_emoji_demo(out: str | Path = "runs/demo-emoji", overrides: list[str] | None = None, progress: bool = True):
    out = Path(out)
    config = preset("tiny", EMOJI_DEMO_OVERRIDES + list(overrides or []))
    timings = {}

    start = time.perf_counter()
    emoji = EmojiData.load(config.model.resolution)  # builds the cache the first time
    emoji.check_split()
    timings["data_s"] = time.perf_counter() - start

    start = time.perf_counter()
    model_dir = train(config, out, progress=progress)
    timings["train_s"] = time.perf_counter() - start
    summary = {
        "command": f"diffdis demo --data emoji --out {out}" + "".join(f" --set {o}" for o in overrides or []),
        "code": code_version(),
        "model": model_record(config, model_dir, out),
        **evaluate_emoji_model(DiffDisPipeline.from_pretrained(model_dir), emoji, out, timings),
    }
    start = time.perf_counter()
    lit = run_lit(out / "lit", splits=("val", "test"), input_size=LIT_INPUT_SIZE)  # the bar to read DiffDis against
    summary["lit"] = {"results": str(out / "lit" / "results.json"), **lit["model"], **lit["discrimination"]}
    summary["timings_s"]["lit_s"] = time.perf_counter() - start
    write_json(out / "results.json", summary)
    write_model_card(model_dir, measured_figures(summary))
    print(report(summary, "DiffDis emoji demo (tiny preset)"))
    return summary


def evaluate_emoji_model(pipe, emoji: EmojiData, out: Path, timings: dict, self_checked: bool = False) -> dict:
    """Every figure of an emoji model: zero-shot on the validation and (once) the test concepts, generation
    judged and measured (FID/KID) for seen and unseen prompts (with `self_checked`, also the best of several by the
    model's own scores: eight times the sampling), and out/samples.png. `timings` gains the evaluation's own."""
    start = time.perf_counter()
    figures = {"validation": emoji_zero_shot(pipe, emoji, "val"), "test": emoji_zero_shot(pipe, emoji, "test")}
    timings["discriminate_s"] = time.perf_counter() - start

    start = time.perf_counter()
    seen, unseen = prompt_concepts(emoji)
    judge, judge_record = emoji_judge(emoji, epochs=JUDGE_EPOCHS)
    timings["judge_train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    extractor = InceptionFeatures()
    generation = {
        "judge": judge_record,
        "seen": emoji_generation(pipe, emoji, judge, seen[:JUDGED_CONCEPTS], extractor=extractor, **GENERATION)[1],
        "unseen": emoji_generation(pipe, emoji, judge, unseen[:JUDGED_CONCEPTS], extractor=extractor, **GENERATION)[1],
        "grid": _grid(pipe, emoji, seen[:GRID_CONCEPTS], unseen[:GRID_CONCEPTS], out / "samples.png"),
    }
    if self_checked:
        for group, concepts in (("seen", seen), ("unseen", unseen)):
            record = emoji_generation(pipe, emoji, judge, concepts[:JUDGED_CONCEPTS], **SELF_CHECKED)[1]
            generation[f"{group}_self_checked"] = record
    timings["generate_s"] = time.perf_counter() - start
    return {
        "data": emoji.record(),
        "discrimination": figures,
        "generation": generation,
        "timings_s": timings,
        "environment": environment(),
    }


def prompt_concepts(emoji: EmojiData) -> tuple[list[int], list[int]]:
    """Seen concepts (a seeded choice) and the unseen test concepts, in a seeded order."""
    rng = np.random.default_rng(0)
    return [int(c) for c in rng.permutation(emoji.concepts("train"))], [
        int(c) for c in rng.permutation(emoji.concepts("test"))
    ]


def _grid(pipe, emoji: EmojiData, seen: list[int], unseen: list[int], path: Path) -> dict:
    """samples.png: per concept a real drawing (Google style, left) and generated samples."""
    concepts = seen + unseen
    prompts = [GENERATION_TEMPLATE.format(emoji.names[c]) for c in concepts for _ in range(GRID_SAMPLES)]
    images = pipe.generate(prompts, GENERATION["num_inference_steps"], GENERATION["guidance_scale"], GENERATION["seed"])
    rows, labels = [], []
    for k, c in enumerate(concepts):
        real = Image.fromarray(emoji.images[emoji.default_drawings[c]["google"]].transpose(1, 2, 0))
        rows.append([real, *images[k * GRID_SAMPLES : (k + 1) * GRID_SAMPLES]])
        labels.append(f"{'unseen' if c in unseen else 'seen'}: {emoji.names[c]}")
    image_grid(rows, labels).save(path)
    return {
        "png": path.name,
        "layout": "per row: a real Google drawing, then generated samples",
        "prompts": GENERATION_TEMPLATE,
        "samples_per_concept": GRID_SAMPLES,
        "seen_concepts": [emoji.names[c] for c in seen],
        "unseen_concepts": [emoji.names[c] for c in unseen],
        **GENERATION,
    }


DEMO_SOURCE = "the emoji demo (`diffdis demo --data emoji`): held-out concepts and the held-out style"


def measured_figures(s: dict, source: str = DEMO_SOURCE) -> dict:
    """The headline figures of an emoji model's evaluation (evaluate_emoji_model) for its model card."""
    test, g = s["discrimination"]["test"], s["generation"]
    u, st = test["unseen"], test["unseen_style"]
    record = {
        "source": source,
        "figures": [
            {
                "name": "zero-shot top-1 / top-5, unseen test concepts",
                "value": f"{u['top1']:.1f}% / {u['top5']:.1f}%",
                "how": f"{u['images']} drawings of {u['classes']} concepts no training caption named, among those "
                f"concepts (chance {u['chance_top1']:.2f}% / {u['chance_top5']:.1f}%)",
            },
            *[
                {
                    "name": f"zero-shot top-1 / top-5, {group} unseen test concepts",
                    "value": f"{part['top1']:.1f}% / {part['top5']:.1f}%",
                    "how": f"{part['concepts']} concepts whose name shares {words} content word with a training name "
                    "or caption, among all unseen test concepts",
                }
                for group, words in (("near", "a"), ("far", "no"))
                for part in [test[f"unseen_{group}"]]
                if part["images"]
            ],
            *[  # a model built on, or aligned to, an ImageNet encoder: the concepts that encoder saw named apart
                {
                    "name": f"zero-shot top-1 / top-5, unseen test concepts {which} ImageNet-1k class",
                    "value": f"{part['top1']:.1f}% / {part['top5']:.1f}%",
                    "how": f"{part['concepts']} concepts, {part['images']} drawings; {part['setting']}",
                }
                for group, which in (("encoder_seen", "named by an"), ("encoder_unseen", "named by no"))
                if f"unseen_{group}" in test
                for part in [test[f"unseen_{group}"]]
            ],
            {
                "name": "seen concepts, unseen style, top-1 / top-5",
                "value": f"{st['top1']:.1f}% / {st['top5']:.1f}%",
                "how": f"{st['images']} OpenMoji drawings among {st['classes']} seen concepts (chance "
                f"{st['chance_top1']:.2f}%)",
            },
            {
                "name": "generation judged correct (seen / unseen prompts)",
                "value": f"{g['seen']['judged_correct']:.1f}% / {g['unseen']['judged_correct']:.1f}%",
                "how": f"{g['seen']['images']} + {g['unseen']['images']} samples, {g['seen']['num_inference_steps']} "
                f"DDIM steps, guidance {g['seen']['guidance_scale']}; judge with {g['judge']['test_accuracy']:.1f}% on "
                f"real held-out drawings (chance {g['judge']['chance']:.2f}%)",
            },
        ],
    }
    if "seen_self_checked" in g:
        seen, unseen = g["seen_self_checked"], g["unseen_self_checked"]
        record["figures"].append(
            {
                "name": "generation judged correct, self-checked (seen / unseen prompts)",
                "value": f"{seen['judged_correct']:.1f}% / {unseen['judged_correct']:.1f}%",
                "how": f"the same prompts; of {seen['candidates']} samples per prompt the model's own discrimination "
                f"pass keeps one (`generate(candidates={seen['candidates']})`), guidance {seen['guidance_scale']:g}",
            }
        )
    return record


def report(s: dict, title: str) -> str:
    model, t = s["model"], s["timings_s"]
    capped = " (the time cap stopped it)" if model["steps_trained"] < model["steps_asked"] else ""
    rows = [("training steps", f"{model['steps_trained']} of {model['steps_asked']}{capped}")]
    for split in ("validation", "test"):
        d = s["discrimination"][split]
        u, r, gz = d["unseen"], d["unseen_retrieval"], d["generalized"]
        rows += [
            (
                f"{split}: zero-shot, unseen concepts",
                f"top-1 {u['top1']:.1f}%  top-5 {u['top5']:.1f}%  ({u['images']} drawings, {u['classes']}-way; "
                f"chance {u['chance_top1']:.2f}% / {u['chance_top5']:.1f}%)",
            ),
            *[
                (
                    f"{split}: {group} unseen concepts",
                    f"top-1 {g.get('top1', 0):.1f}%  top-5 {g.get('top5', 0):.1f}%  ({g['concepts']} concepts, "
                    f"{g['images']} drawings)",
                )
                for group in ("near", "far")
                for g in [d[f"unseen_{group}"]]
            ],
            (
                f"{split}: retrieval R@1/5/10",
                " / ".join(f"{r[f'image_to_text_R@{k}']:.1f}" for k in (1, 5, 10))
                + "  image->name;  "
                + " / ".join(f"{r[f'text_to_image_R@{k}']:.1f}" for k in (1, 5, 10))
                + "  name->image",
            ),
            (
                f"{split}: generalised (all names)",
                f"unseen {gz['generalized_unseen_top1']:.1f}%, seen {gz['generalized_seen_top1']:.1f}%, harmonic "
                f"{gz['generalized_harmonic_mean']:.1f}  (chance {gz['generalized_chance']:.2f}%)",
            ),
        ]
    st = s["discrimination"]["test"]["unseen_style"]
    seen = s["discrimination"]["test"]["seen_heldout_drawings"]
    g = s["generation"]
    rows += [
        (
            "test: unseen style (OpenMoji)",
            f"top-1 {st['top1']:.1f}%  top-5 {st['top5']:.1f}%  ({st['classes']}-way; chance {st['chance_top1']:.2f}%)",
        ),
        ("held-out drawings, seen concepts", f"top-1 {seen['top1']:.1f}%  ({seen['classes']}-way)"),
        (
            "generation judged correct",
            f"seen prompts {g['seen']['judged_correct']:.1f}%, unseen {g['unseen']['judged_correct']:.1f}%  "
            f"(judge: {g['judge']['test_accuracy']:.1f}% on real held-out drawings, chance "
            f"{g['judge']['chance']:.2f}%)",
        ),
        *_self_checked_rows(g),
        *[
            (
                f"generation FID / KID ({group} prompts)",
                f"{g[group]['fid_kid']['fid']:.1f} / {g[group]['fid_kid']['kid_mean']:.4f}  ({g[group]['images']} "
                f"samples against {g[group]['fid_kid']['real_images']} real drawings of the same concepts)",
            )
            for group in ("seen", "unseen")
        ],
        *_lit_rows(s.get("lit")),
        *[(f"time: {k[:-2]}", f"{v:.0f} s") for k, v in t.items()],
        ("time: total", f"{sum(t.values()):.0f} s"),
    ]
    return table(rows, title)


def _self_checked_rows(g: dict) -> list[tuple[str, str]]:
    if "seen_self_checked" not in g:
        return []
    seen, unseen = g["seen_self_checked"], g["unseen_self_checked"]
    return [
        (
            "generation judged correct, self-checked",
            f"seen prompts {seen['judged_correct']:.1f}%, unseen {unseen['judged_correct']:.1f}%  (best of "
            f"{seen['candidates']} by its own discrimination pass, guidance {seen['guidance_scale']:g})",
        )
    ]


def _lit_rows(lit: dict | None) -> list[tuple[str, str]]:
    """The locked-image baseline's unseen figures, the bar to read the model's against."""
    if not lit:
        return []
    rows = []
    for split in ("validation", "test"):
        d = lit["val" if split == "validation" else "test"]
        u, far = d["unseen"], d["unseen_far"]
        rows.append(
            (
                f"lit baseline, {split}: unseen",
                f"top-1 {u['top1']:.1f}%  top-5 {u['top5']:.1f}%  (far {far['top1']:.1f}%; frozen "
                f"{lit['image_encoder']} + a linear map, no generation)",
            )
        )
    return rows
