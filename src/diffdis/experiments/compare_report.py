"""The comparison study's report, rebuilt from every result.json found: per block, each model's figures as mean
± std over seeds, in groups (DiffDis and its baselines, the ablations, the settings sweep, the query scale); each
row against DiffDis, and a Diffusion Classifier against the same classifier on DiffDis, as a seed-level paired
t-interval; each emoji model pretrained against from scratch; Holm-Bonferroni within each family of headline tests;
the costs from one alternating timing; compare.json, compare.md (compare_markdown.py), compare.png (the headline
figures) and curves.png (learning curves)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

from ..evaluation.significance import holm, image_standard_error, paired_interval
from ..utils.charts import Figure, bar_chart, colour, line_chart, save
from ..utils.results import write_json
from .compare_blocks import BLOCKS
from .compare_emoji import gamma_name
from .compare_markdown import markdown

# (column, path into a row's record, path of per-image 0/1 scores or None, lower is better). Per-image scores
# sit beside their test-set positions ("correct"/"positions", "unseen_correct"/"unseen_positions"), so that rows
# scored on different numbers of images are paired on the images they share. The validation
# columns (the last in-training validation on held-out training images; the KID of the generation guidance chosen
# on validation) are the ones settings are read from.
Path_ = tuple[str | int, ...]
COLUMNS: dict[str, list[tuple[str, Path_, Path_ | None, bool]]] = {
    "fashion": [
        ("seen-class top-1", ("classification", "top1"), ("classification", "correct"), False),
        ("validation top-1", ("curve", -1, "val_top1"), None, False),
        ("FID", ("generation", "fid", "fid"), None, True),
        ("KID", ("generation", "fid", "kid_mean"), None, True),
        ("validation KID", ("generation", "validation_kid"), None, True),
        ("judged accuracy", ("generation", "generation_accuracy"), None, False),
        ("judged shirt", ("generation", "per_class", "shirt"), None, False),
    ],
    "unseen": [
        ("unseen top-1 (among unseen)", ("classification", "unseen_top1"), ("classification", "unseen_correct"), False),
        ("generalized seen", ("classification", "generalized_seen_top1"), None, False),
        ("generalized unseen", ("classification", "generalized_unseen_top1"), None, False),
        ("harmonic mean", ("classification", "generalized_harmonic_mean"), None, False),
    ],
    "shapes": [
        ("held-out colour", ("heldout_colour", "top1"), ("heldout_colour", "correct"), False),
        ("held-out shape", ("heldout_shape", "top1"), ("heldout_shape", "correct"), False),
        ("untrained test scenes colour", ("test_unseen_scenes_colour", "top1"), None, False),
        ("untrained test scenes shape", ("test_unseen_scenes_shape", "top1"), None, False),
        ("R@1 i->t", ("heldout_retrieval", "image_to_text_R@1"), None, False),
        ("R@5 i->t", ("heldout_retrieval", "image_to_text_R@5"), None, False),
        ("R@10 i->t", ("heldout_retrieval", "image_to_text_R@10"), None, False),
        ("R@1 t->i", ("heldout_retrieval", "text_to_image_R@1"), None, False),
        ("generated colour", ("generation", "per_attribute", "colour"), None, False),
        ("generated shape", ("generation", "per_attribute", "shape"), None, False),
    ],
}
_TEST = ("test",)
COLUMNS["emoji"] = [
    ("unseen top-1", (*_TEST, "unseen", "top1"), (*_TEST, "unseen", "correct"), False),
    ("unseen top-5", (*_TEST, "unseen", "top5"), None, False),
    # near/far (data/emoji/transfer.py): recorded by results made since the grouping exists, blank before
    ("unseen near top-1", (*_TEST, "unseen_near", "top1"), (*_TEST, "unseen_near", "correct"), False),
    ("unseen far top-1", (*_TEST, "unseen_far", "top1"), (*_TEST, "unseen_far", "correct"), False),
    ("validation unseen top-1", ("validation", "top1"), None, False),
    ("unseen style top-1", (*_TEST, "unseen_style", "top1"), (*_TEST, "unseen_style", "correct"), False),
    ("unseen style top-5", (*_TEST, "unseen_style", "top5"), None, False),
    ("R@1 i->t", (*_TEST, "unseen_retrieval", "image_to_text_R@1"), None, False),
    ("R@5 i->t", (*_TEST, "unseen_retrieval", "image_to_text_R@5"), None, False),
    ("R@1 t->i", (*_TEST, "unseen_retrieval", "text_to_image_R@1"), None, False),
    (
        "seen held-out top-1",
        (*_TEST, "seen_heldout_drawings", "top1"),
        (*_TEST, "seen_heldout_drawings", "correct"),
        False,
    ),
    ("judged seen", ("generation", "seen", "judged_correct"), None, False),
    ("judged unseen", ("generation", "unseen", "judged_correct"), None, False),
    ("FID seen", ("generation", "seen", "fid_kid", "fid"), None, True),
    ("KID seen", ("generation", "seen", "fid_kid", "kid_mean"), None, True),
    ("FID unseen", ("generation", "unseen", "fid_kid", "fid"), None, True),
    ("query ms / image", ("test_ms_per_image",), None, True),
]
COLUMNS["emoji-query"] = [  # validation only: the block chooses γ
    ("validation unseen top-1", ("validation", "top1"), None, False),
    ("validation unseen top-5", ("validation", "top5"), None, False),
    *[
        (f"validation top-1, {n} query step{'s' * (n > 1)}", ("validation", "top1_by_query_steps", str(n)), None, False)
        for n in (1, 2, 8)
    ],
]
CHANCE = {
    "fashion": "10",
    "unseen": "33.3 among unseen, 10 generalized",
    "shapes": "colour 16.7, shape 25",
    "emoji": "unseen 0.70 top-1 / 3.5 top-5 (143-way), unseen style 0.08 / 0.41 (1,212-way)",
    "emoji-query": "1.4 top-1 / 7.0 top-5 (71 unseen validation concepts)",
}


def kind(block: str) -> str:
    """Which columns, chance line and headline a block has."""
    return BLOCKS[block].columns


def _get(record: dict, path: Path_ | None):
    """The value at `path` (dict keys, list indices), or None where it is missing."""
    for key in path or ():
        if isinstance(key, int):
            record = record[key] if isinstance(record, list) and record else None
        else:
            record = record.get(key) if isinstance(record, dict) else None
    return record if path else None


def load_results(out: Path) -> dict[str, dict[str, dict[int, dict]]]:
    """block -> row -> seed -> record. Diffusion-Classifier scoring of a generating model becomes rows of its
    own ("gen + DC-8"), shaped like a classification result."""
    blocks: dict = {}
    for path in sorted((out / "runs").glob("*/*/result.json")):
        record = json.loads(path.read_text())
        tried = (record.get("generation") or {}).get("guidance_tried")
        if tried:  # the guidance was chosen for the lowest validation KID: that KID is a validation figure
            record["generation"]["validation_kid"] = min(tried.values())
        rows = blocks.setdefault(record["block"], {})
        rows.setdefault(record["model"], {})[record["seed"]] = record
        for n, scored in (record.get("diffusion_classifier") or {}).items():
            rows.setdefault(f"{record['model']} + DC-{n}", {})[record["seed"]] = {"classification": scored}
    query, pretrained = blocks.get("emoji-query"), blocks.get("emoji-pretrained", {})
    if query:  # its γ = 1 rows are emoji-pretrained's runs of the same seeds (the same configuration)
        seeds = {seed for row in query.values() for seed in row}
        for row in ("diffdis", "regression"):
            shared = {
                s: {**r, "shared_from": "emoji-pretrained"} for s, r in pretrained.get(row, {}).items() if s in seeds
            }
            if shared:
                query[row] = shared
    return blocks


def _stat(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "per_seed": values,
    }


def _shared_images(left: list[dict], right: list[dict], vector: Path_) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, images) per-image scores of two rows on the test images both scored (by test-set position)."""
    where = (*vector[:-1], vector[-1].replace("correct", "positions"))
    a_rows, b_rows = [], []
    for a, b in zip(left, right):
        a_at = dict(zip(_get(a, where) or range(len(_get(a, vector))), _get(a, vector)))  # no positions: all
        b_at = dict(zip(_get(b, where) or range(len(_get(b, vector))), _get(b, vector)))
        shared = sorted(set(a_at) & set(b_at))
        a_rows.append([a_at[p] for p in shared])
        b_rows.append([b_at[p] for p in shared])
    return np.array(a_rows), np.array(b_rows)


def _model(row: str) -> str:
    """The trained model a row scores ("gen + DC-8" -> "gen")."""
    return row.split(" + DC-")[0]


def _group(row: str, groups: dict[str, tuple[str, ...]]) -> str:
    """The group a row is reported in: its model's, except that the Diffusion-Classifier rows of ablations and
    settings (measured, kept in compare.json) are not part of the question those runs answer."""
    group = next((name for name, models in groups.items() if _model(row) in models), "other")
    return group if group == "models" or "DC-" not in row else "other"


def _same_classifier(row: str, rows: dict) -> str | None:
    """For another model's Diffusion Classifier ("gen + DC-8"), the same classifier on DiffDis's generation branch
    ("diffdis + DC-8") where the study measured it."""
    if " + DC-" not in row or _model(row) == "diffdis":
        return None
    same = f"diffdis + DC-{row.split(' + DC-')[1]}"
    return same if same in rows else None


def _paired(reference: dict[int, dict], seeds: dict[int, dict], columns: list, name: str) -> dict:
    """reference - row per column, paired on the seeds both have: a seed-level paired t-interval of the per-seed
    differences (accuracies with per-image scores: each seed's difference on the test images both rows scored,
    beside the image-level standard error of one seed's difference)."""
    out = {}
    for column, path, vector, lower in columns:
        common = [
            s for s in sorted(seeds) if s in reference and None not in (_get(reference[s], path), _get(seeds[s], path))
        ]
        if not common:
            continue
        if vector and all(_get(r[s], vector) for r in (reference, seeds) for s in common):
            a, b = _shared_images([reference[s] for s in common], [seeds[s] for s in common], vector)
            interval = paired_interval(100.0 * a.mean(1), 100.0 * b.mean(1))
            interval.update(images=a.shape[1], image_standard_error=image_standard_error(a, b))
        else:
            interval = paired_interval(
                [_get(reference[s], path) for s in common], [_get(seeds[s], path) for s in common]
            )
        out[column] = {**interval, "lower_is_better": lower, "reference": name}
    return out


def block_table(block: str, rows: dict[str, dict[int, dict]], groups: dict[str, tuple[str, ...]]) -> dict:
    """Mean ± std per row and column; DiffDis - row for every other row, and for another model's Diffusion
    Classifier also the same classifier on DiffDis - row. Rows without a figure in this block's columns are left
    out."""
    columns = COLUMNS[kind(block)]
    table, paired, same_classifier = {}, {}, {}
    order = [*groups, "other"]
    listed = [model for models in groups.values() for model in models]

    def place(row: str) -> tuple:  # by group, query rows before Diffusion-Classifier rows, then as the groups list
        model = _model(row)
        return order.index(_group(row, groups)), "DC-" in row, listed.index(model) if model in listed else 0, row

    for row in sorted(rows, key=place):
        seeds = rows[row]
        table[row] = {}
        for column, path, _, _ in columns:
            values = [v for v in (_get(seeds[s], path) for s in sorted(seeds)) if v is not None]
            if values:
                table[row][column] = _stat(values)
        if not table[row]:
            del table[row]
            continue
        if row != "diffdis" and "diffdis" in rows:
            paired[row] = _paired(rows["diffdis"], seeds, columns, "diffdis")
        same = _same_classifier(row, rows)
        if same:
            same_classifier[row] = _paired(rows[same], seeds, columns, same)
    return {
        "columns": [c[0] for c in columns],
        "chance": CHANCE[kind(block)],
        "rows": table,
        "groups": {row: _group(row, groups) for row in table},
        "diffdis_minus_row": paired,
        "same_classifier_on_diffdis_minus_row": same_classifier,
    }


def ita_curves(rows: dict[str, dict[int, dict]], order: list[str]) -> dict[str, dict[str, dict]]:
    """Per model of the fashion block, in `order`: validation L_ITA with the text timestep pinned per bucket, over
    seeds."""
    out = {}
    for row in (r for r in order if r in rows):
        per_seed = [r["l_ita_by_t_e"] for r in rows[row].values() if "l_ita_by_t_e" in r]
        if per_seed:
            out[row] = {bucket: _stat([p[bucket] for p in per_seed]) for bucket in per_seed[0]}
    return out


def curves_figure(blocks: dict[str, dict[str, dict[int, dict]]], models: list[str]) -> Figure | None:
    """Validation figures against training steps, mean over seeds: one panel per measured quantity, one line per
    trained model (`models` fixes the order and so each model's colour in every panel)."""
    panels = [
        ("fashion", "val_top1", "seen-class validation top-1 (%), Fashion-MNIST"),
        ("fashion", "curve_judged", "judged generation accuracy (%), 10 samples per class"),
        ("unseen-A", "curve_unseen_top1", "unseen-class validation top-1 (%), unseen-A"),
        ("emoji-pretrained", "curve_unseen_top1", "unseen-concept validation top-1 (%), emoji, pretrained UNet"),
        ("emoji-scratch", "curve_unseen_top1", "unseen-concept validation top-1 (%), emoji, from scratch"),
    ]
    found = {row for block, _, _ in panels for row in blocks.get(block, {})}
    rows = [row for row in models if row in found]
    colours = {row: colour(i) for i, row in enumerate(rows)}  # one colour per model in every panel
    charts = []
    for block, key, title in panels:
        series = {}
        for row in (r for r in rows if r in blocks.get(block, {})):
            points: dict[int, list[float]] = {}
            for record in blocks[block][row].values():
                for point in record.get("curve", []):
                    if key in point:
                        points.setdefault(point["step"], []).append(point[key])
            if points:
                series[row] = {step: statistics.fmean(v) for step, v in points.items()}
        if series:
            charts.append((series, title))
    return line_chart(charts, "training step", "%", log_x=False, colours=colours) if charts else None


HEADLINE = {
    "fashion": "seen",
    "shapes": "colour",
    "unseen": "unseen",
    "emoji": "unseen",
    "emoji-query": "val",
}  # each block's first column, in a word


def headline_figure(report: dict) -> Figure | None:
    """The first column of each block, mean per row of the models and ablations (a bar per row)."""
    bars = {}
    for block, table in report["blocks"].items():
        column = table["columns"][0]
        what = HEADLINE[kind(block)]
        for row, stats in table["rows"].items():
            if column in stats and table["groups"][row] in ("models", "ablations"):
                bars[f"{block} {what}: {row}"] = (stats[column]["mean"], stats[column]["std"])
    title = "accuracy (%): seen classes, held-out colours, unseen classes; mean and std over seeds"
    return bar_chart(bars, title) if bars else None


FIRST_EDITION = ("fashion", "unseen-A", "unseen-B", "shapes")
# Each family: its blocks, the groups of rows tested in them (the rest is reported with uncorrected intervals
# only), and what it is.
FAMILIES = {
    "first edition": (
        FIRST_EDITION,
        ("models",),
        "the first column of each first-edition block (Fashion-MNIST seen-class top-1, unseen-A and unseen-B unseen "
        "top-1, shapes held-out colour): DiffDis (or its Diffusion Classifier) minus each baseline; the ablations and "
        "the settings sweep are exploratory (uncorrected intervals only)",
    ),
    "second edition": (
        ("emoji-pretrained",),
        ("models", "ablations", "query"),
        "emoji unseen top-1: pretrained DiffDis minus every other pretrained row (clip, dis, the regression ablation, "
        "DiffDis at the γ chosen on validation when it is not 1; other γ rows are exploratory), and each model "
        "pretrained minus the same model from scratch",
    ),
}


def _codes(record: dict) -> set[str]:
    """The code versions that trained and evaluated a run (first-edition records name only the evaluating one)."""
    if "evaluated_by" not in record:
        return {record.get("code", "unknown")}
    return {record["evaluated_by"]["code"], *(segment["code"] for segment in record.get("trained_by", []))}


def pretrained_minus_scratch(blocks: dict[str, dict[str, dict[int, dict]]]) -> dict[str, dict]:
    """Per model trained in both emoji blocks: pretrained - from scratch, paired on seed (same seed, same data
    order and new-module initialisation; the UNet's start is the difference)."""
    pre, scratch = blocks.get("emoji-pretrained", {}), blocks.get("emoji-scratch", {})
    return {
        model: _paired(pre[model], scratch[model], COLUMNS["emoji"], f"{model} pretrained")
        for model in pre
        if model in scratch
    }


def _family_tests(report: dict) -> dict[str, list[dict]]:
    """The interval records of each family (FAMILIES), to be corrected together."""
    tests: dict[str, list[dict]] = {}
    chosen = gamma_name(report["settings"].get("emoji", {}).get("chosen_gamma") or 1.0)  # the γ row of the family
    for name, (blocks, groups, _) in FAMILIES.items():
        tests[name] = []
        for block in (b for b in blocks if b in report["blocks"]):
            table = report["blocks"][block]
            first = table["columns"][0]
            for kind_ in ("diffdis_minus_row", "same_classifier_on_diffdis_minus_row"):
                for row, diffs in table[kind_].items():
                    group = table["groups"].get(row)
                    if group in groups and first in diffs and (group != "query" or row == chosen):
                        tests[name].append({"block": block, "row": row, "interval": diffs[first]})
    headline = COLUMNS["emoji"][0][0]
    for model, diffs in report["pretrained_minus_scratch"].items():
        if headline in diffs:
            tests["second edition"].append({"block": "pretrained - scratch", "row": model, "interval": diffs[headline]})
    return tests


def correct_families(report: dict, alpha: float = 0.05) -> dict:
    """Holm-Bonferroni within each family: every tested interval gains holm_p and holm_significant; returns each
    family's description and members."""
    out = {}
    for name, tests in _family_tests(report).items():
        tested = [t for t in tests if t["interval"].get("p_value") is not None]
        adjusted, rejected = holm([t["interval"]["p_value"] for t in tested], alpha) if tested else ([], [])
        for t, p, r in zip(tested, adjusted, rejected):
            t["interval"].update(holm_p=p, holm_significant=r, family=name)
        out[name] = {
            "description": FAMILIES[name][2],
            "alpha": alpha,
            "tests": len(tested),
            "members": [f"{t['block']}: {t['row']}" for t in tested],
            "surviving": [f"{t['block']}: {t['row']}" for t, r in zip(tested, rejected) if r],
        }
    return out


def write_report(out: Path, settings: dict, costs: dict | None = None) -> dict:
    """compare.json, compare.md and the figures from every result under out/runs, with the classification paths'
    `costs` (compare_cost.py; without them, those of the earlier report are kept)."""
    blocks = load_results(out)
    costs = costs or {}
    earlier = out / "compare.json"
    if not costs and earlier.exists():  # the models are not here (a clone holds only result files): keep the timing
        costs = json.loads(earlier.read_text()).get("costs", {})
        note = " (kept from the earlier report: the models it timed are not in this folder)"
        if costs and note not in costs["how"]:
            costs["how"] += note
    tables = {block: block_table(block, rows, settings["groups"]) for block, rows in blocks.items()}
    models = [model for group in settings["groups"].values() for model in group]
    records = [
        r
        for rows in blocks.values()
        for seeds in rows.values()
        for r in seeds.values()
        if "wall_seconds" in r and "shared_from" not in r
    ]
    report = {
        "settings": settings,
        "runs_measured": len(records),
        # training time accumulates across resumes (train_seconds); evaluation is timed by the invocation that ran it
        "run_seconds_total": sum(r["train_seconds"] + r["wall_seconds"]["evaluate"] for r in records),
        "steps_per_run": sorted({r["steps"] for r in records}),
        "run_code_versions": sorted({code for r in records for code in _codes(r)}),
        "seeds_measured": sorted({r["seed"] for r in records}),
        "blocks": tables,
        "costs": costs,
        "l_ita_by_t_e": ita_curves(blocks.get("fashion", {}), models),
        "emoji_l_ita_by_t_e": ita_curves(blocks.get("emoji-query", {}), list(blocks.get("emoji-query", {}))),
        "pretrained_minus_scratch": pretrained_minus_scratch(blocks),
        "runs": {block: {row: sorted(seeds) for row, seeds in rows.items()} for block, rows in blocks.items()},
    }
    report["families"] = correct_families(report)
    write_json(out / "compare.json", report)
    (out / "compare.md").write_text(markdown(report))
    for name, figure in (("compare.png", headline_figure(report)), ("curves.png", curves_figure(blocks, models))):
        if figure is not None:
            save(figure, out / name)
    print(markdown(report))
    return report
