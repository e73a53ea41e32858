"""Charts of measured figures, drawn with matplotlib (headless: figures are built without pyplot, so no display and
no global state): lines against steps (log or linear axes, optional error bars), horizontal bars with whiskers,
a confusion heat map. `save` writes a PNG and, beside it, an SVG for papers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .optional import require

require("matplotlib", "eval")
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

Series = dict[str, dict[int, float]]  # line name -> {x: y}


def colour(i: int) -> str:
    """The i-th of 20 distinct colours (tab20's strong shades, then its light ones), so that one name can keep its
    colour across charts."""
    return to_hex(colormaps["tab20"](2 * (i % 10) + (i // 10) % 2))


def save(figure: Figure, path: str | Path) -> Path:
    """`path` (.png) and the same chart as .svg beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    figure.savefig(path.with_suffix(".svg"))
    return path


def _lines(axes, series: Series, colours: dict[str, str] | None, errors: Series | None) -> None:
    for i, (name, points) in enumerate(series.items()):
        xs = sorted(points)
        spread = [errors[name][x] for x in xs] if errors and name in errors else None
        axes.errorbar(
            xs,
            [points[x] for x in xs],
            yerr=spread,
            label=name,
            color=colours[name] if colours else colour(i),
            marker="o",
            markersize=3,
            capsize=3 if spread else 0,
        )


def line_chart(
    panels: Sequence[tuple[Series, str]],
    x_label: str,
    y_label: str,
    log_x: bool = True,
    colours: dict[str, str] | None = None,
    errors: Series | None = None,
) -> Figure:
    """Line charts stacked, one per (series, title) panel: one line per series of y against x (log2 x axis for
    sampler steps, linear for training steps), error bars where `errors` gives them, the legend outside the axes
    so it never covers a line (`colours` keeps a name's colour in every panel)."""
    figure = Figure(figsize=(8, 3.2 * len(panels)), layout="constrained")
    for k, (series, title) in enumerate(panels):
        axes = figure.add_subplot(len(panels), 1, k + 1)
        _lines(axes, series, colours, errors)
        if log_x:
            axes.set_xscale("log", base=2)
            axes.set_xticks(sorted({x for p in series.values() for x in p}), labels=None)
            axes.get_xaxis().set_major_formatter("{x:g}")
        axes.set(title=title, xlabel=x_label, ylabel=y_label)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return figure


def bar_chart(bars: dict[str, tuple[float, float]], title: str, maximum: float = 100.0) -> Figure:
    """Horizontal bars of (value, spread) per label, top to bottom in the order given, the spread as a whisker."""
    labels = list(bars)
    values = [bars[k][0] for k in labels]
    figure = Figure(figsize=(8, 0.8 + 0.28 * len(labels)), layout="constrained")
    axes = figure.add_subplot()
    axes.barh(labels, values, xerr=[bars[k][1] for k in labels], color=colour(0), capsize=2)
    for y, value in enumerate(values):
        axes.annotate(f"{value:.1f}", (value, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, maximum)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(title, fontsize=9)
    axes.grid(axis="x", alpha=0.3)
    return figure


def confusion_figure(confusion: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """Confusion matrix as a heat map: each cell the percentage of its row's (true class's) images predicted as
    its column's class; each class's image count beside its row, the overall top-1 in the title."""
    totals = confusion.sum(1)
    rates = (100.0 * confusion.float() / totals[:, None].clamp_min(1)).numpy()
    accuracy = 100.0 * confusion.diag().sum().item() / max(1, int(totals.sum()))
    k = len(class_names)
    figure = Figure(figsize=(1.6 + 0.6 * k, 1.4 + 0.6 * k), layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(rates, cmap="Blues", vmin=0, vmax=100)
    for i in range(k):
        for j in range(k):
            shade = "white" if rates[i, j] > 55 else "black"
            axes.text(j, i, f"{rates[i, j]:.0f}", ha="center", va="center", fontsize=7, color=shade)
    axes.set_xticks(range(k), class_names, rotation=90)
    axes.set_yticks(range(k), [f"{name} (n={int(n)})" for name, n in zip(class_names, totals)])
    axes.set(xlabel="predicted class", ylabel="true class (% of its images in each cell)")
    axes.set_title(f"top-1 {accuracy:.2f}% of {int(totals.sum())} images", fontsize=9)
    return figure
