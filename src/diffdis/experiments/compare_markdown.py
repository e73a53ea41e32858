"""The comparison study's report as Markdown (compare.md): per block and group a table of mean ± std over seeds,
each row against its reference with the seed-level interval and its marks, the history of the study's settings,
the emoji edition's pretrained-minus-scratch differences and L_ITA tables, and each family of headline tests."""

from __future__ import annotations


def _fmt(stat: dict | None, digits: int) -> str:
    if not stat:
        return "-"
    return f"{stat['mean']:.{digits}f}" + (f" ± {stat['std']:.{digits}f}" if stat["n"] > 1 else "") + f" ({stat['n']})"


def _digits(column: str) -> int:
    return 4 if "KID" in column else 1


GROUP_TITLES = {
    "models": "",
    "ablations": "Ablations (each DiffDis with one change)",
    "settings": "Settings sweep: the choice is read from the validation columns only",
    "query": "The query scale γ (√D ≈ 19.6 for MiniLM), diffused and trained by regression",
}


def _group_lines(table: dict, members: list[str], columns: list[str]) -> list[str]:
    """One group's table and each member against its reference."""
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in members:
        stats = table["rows"][row]
        lines.append(f"| {row} | " + " | ".join(_fmt(stats.get(c), _digits(c)) for c in columns) + " |")
    pairs = [(row, kind) for row in members for kind in ("diffdis_minus_row", "same_classifier_on_diffdis_minus_row")]
    compared = [(row, table[kind][row]) for row, kind in pairs if table[kind].get(row)]
    if compared:
        lines += ["", DIFFERENCE_LEGEND, ""]
    for row, diffs in compared:
        lines.append(f"- {next(iter(diffs.values()))['reference']} vs {row}: " + _differences(diffs))
    return [*lines, ""]


DIFFERENCE_LEGEND = (
    "Reference minus each row: mean of the per-seed differences and its 95% seed-level paired t-interval "
    "(df = seeds - 1); * = the interval excludes 0; † = the difference also survives Holm-Bonferroni over its "
    "family of headline tests (see the end). Only † is called significant; an interval that holds 0 is not "
    "distinguishable from no difference."
)


def _differences(diffs: dict[str, dict]) -> str:
    parts = []
    for column, d in diffs.items():
        if d.get("low") is None:
            parts.append(f"{column} {d['mean_difference']:+.2f} (one seed)")
        else:
            mark = ("*" if d["significant"] else "") + ("†" if d.get("holm_significant") else "")
            parts.append(f"{column} {d['mean_difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]{mark}")
    return "; ".join(parts)


HISTORY = (
    "How the first edition's settings came to be: the study's shared settings (γ = 1, λ = 1, x0-prediction of the "
    "query) were those of an earlier sweep of γ, λ and ε-prediction that was scored on 1,000 Fashion-MNIST test "
    "images, the first 1,000 of this study's 2,000 test images in the same seeded order, and an earlier README drew a "
    "conclusion from that sweep. So test images were read to choose them; within this study, every setting was "
    "chosen on validation images only. The Diffusion Classifier rows (DC-n: n timesteps per class) scored 100 test "
    "images at 8 timesteps and 25 at 32; its class condition is each class's token states averaged over the five "
    "evaluation templates, a condition no model saw in training (`diffdis compare --dc-templates` scores it per "
    "template beside the averaged condition, dc_templates.json).",
)

THIRD_EDITION = (
    "Third edition (emoji3-* blocks; pre-registered in docs/study.md): a generator, then DiffDis and clip fine-tuned "
    "from it or trained from scratch on the same image presentations, with and without REPA. Its headline test and "
    "its intervals over concepts and seeds are in third_edition.json (`python -m diffdis.experiments."
    "concept_intervals --edition 3`), written only once the 2 x 2 is measured; the tables below are per block.",
    "",
)


def markdown(report: dict) -> str:
    s = report["settings"]
    command = s.get("command", "diffdis compare")
    versions = ", ".join(report.get("run_code_versions", [])) or "not recorded"
    third = [block for block in report["blocks"] if block.startswith("emoji3-")]
    lines = [
        "# DiffDis and its baselines at equal steps",
        "",
        f"Written by `{command}` from every result found: {report['runs_measured']} runs, each result.json with the "
        f"command that trained it (code {versions}), {report['run_seconds_total'] / 3600:.2f} h of training and "
        f"evaluation in all (this machine: {s.get('environment', {}).get('torch_threads', '?')} threads).",
        "",
        f"Runs trained for {'/'.join(map(str, report['steps_per_run']))} steps (warm-up 5%, cosine to the last "
        "step; the third edition's: the released model's recipe, 100 warm-up steps and EMA 0.999; the emoji blocks: "
        f"see their section), seeds {report['seeds_measured']};"
        " figures are mean ± std over seeds (number of seeds in brackets). Settings (query steps and guidance,"
        " generation guidance) were chosen per model on its validation split; each test figure was read once.",
        "",
        *HISTORY,
        "",
        *(THIRD_EDITION if third else ()),
    ]
    for block, table in report["blocks"].items():
        chance = table["chance"]
        held = report["settings"]["holdout_triples"].get(block)
        lines += [f"## {block}" + (f": held out of training {', '.join(held)}" if held else ""), ""]
        lines += [f"Chance: {chance} (%).", ""]
        for group, title in GROUP_TITLES.items():
            members = [row for row, g in table["groups"].items() if g == group]
            if not members:
                continue
            columns = [c for c in table["columns"] if any(c in table["rows"][row] for row in members)]
            if group != "models":  # DiffDis on the first line, for reading the changes against it
                lines += [f"### {title}", ""]
                members = ["diffdis", *members] if "diffdis" in table["rows"] else members
            lines += _group_lines(table, members, columns)
        if "other" in table["groups"].values():
            lines += ["The Diffusion Classifier was also run on each generating ablation: see compare.json.", ""]
    lines += _ita_lines(report.get("l_ita_by_t_e"), "fashion block")
    lines += _emoji_lines(report)
    lines += _family_lines(report)
    if report.get("costs"):
        lines += [
            "## Cost per image (alternating timing, one process)",
            "",
            "| path | median ms / image | range |",
            "|---|---|---|",
        ]
        for name, c in report["costs"].items():
            if isinstance(c, dict):
                lines.append(f"| {name} | {c['median_ms_per_image']:.2f} | {c['min']:.2f}-{c['max']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def _emoji_lines(report: dict) -> list[str]:
    """Pretrained minus from scratch per model, and validation L_ITA by text timestep in emoji-query."""
    lines = []
    if report.get("pretrained_minus_scratch"):
        lines += ["## Emoji: each model pretrained minus the same model from scratch", "", DIFFERENCE_LEGEND, ""]
        for model, diffs in report["pretrained_minus_scratch"].items():
            lines.append(f"- {model}: " + _differences(diffs))
        lines.append("")
    return lines + _ita_lines(report.get("emoji_l_ita_by_t_e"), "emoji-query: unseen validation concepts")


def _ita_lines(table: dict | None, where: str) -> list[str]:
    """A table of validation L_ITA by text timestep, one row per model (mean ± std over seeds)."""
    if not table:
        return []
    buckets = list(next(iter(table.values())))
    lines = [
        f"## Validation L_ITA by text timestep ({where})",
        "",
        "| model | " + " | ".join(buckets) + " |",
        "|---" * (len(buckets) + 1) + "|",
    ]
    lines += [f"| {row} | " + " | ".join(_fmt(stats[b], 3) for b in buckets) + " |" for row, stats in table.items()]
    return [*lines, ""]


def _family_lines(report: dict) -> list[str]:
    lines = []
    for name, family in report.get("families", {}).items():
        if not family["tests"]:
            continue
        surviving = ", ".join(family["surviving"]) or "none"
        lines += [
            f"## Family of headline tests: {name}",
            "",
            f"{family['description']}: {family['tests']} tests, Holm-Bonferroni at family-wise α = {family['alpha']}. "
            f"Surviving (†): {surviving}.",
            "",
        ]
    return lines
