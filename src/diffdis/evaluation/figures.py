"""PNG figures drawn with PIL alone: image grids and a confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont


def _text_width(text: str, font) -> int:
    return int(font.getlength(text)) if hasattr(font, "getlength") else 6 * len(text)


def image_grid(
    rows: Sequence[Sequence[Image.Image]], labels: Sequence[str] | None = None, scale: int = 4
) -> Image.Image:
    """rows of equally sized images -> one RGB grid, each image enlarged `scale` times, a label left of each row
    (the label column is as wide as the longest label)."""
    w, h = rows[0][0].size
    cell_w, cell_h = w * scale, h * scale
    font = ImageFont.load_default()
    label_w = max(_text_width(label, font) for label in labels) + 10 if labels else 0
    grid = Image.new("RGB", (label_w + cell_w * max(len(r) for r in rows), cell_h * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for i, row in enumerate(rows):
        if labels:
            draw.text((4, i * cell_h + cell_h // 2 - 6), labels[i], fill="black", font=font)
        for j, image in enumerate(row):
            grid.paste(
                image.convert("RGB").resize((cell_w, cell_h), Image.Resampling.NEAREST),
                (label_w + j * cell_w, i * cell_h),
            )
    return grid


def confusion_figure(confusion: torch.Tensor, class_names: Sequence[str], cell: int = 44) -> Image.Image:
    """Confusion matrix as a heat map: each cell the percentage of its row's (true class's) images predicted as
    its column's class; full class names on both axes (the column names written upwards); the overall top-1
    and each class's image count in the margins."""
    k = len(class_names)
    font = ImageFont.load_default()
    names_w = max(_text_width(name, font) for name in class_names) + 8
    top, left = names_w + 30, names_w + 8
    image = Image.new("RGB", (left + k * cell + 60, top + k * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    totals = confusion.sum(1)
    rates = 100.0 * confusion.float() / totals[:, None].clamp_min(1)
    accuracy = 100.0 * confusion.diag().sum().item() / max(1, int(totals.sum()))
    draw.text((4, 4), f"top-1 {accuracy:.2f}% of {int(totals.sum())} images", fill="black", font=font)
    draw.text((4, 16), "cell: % of the row's true class predicted as the column's", fill="black", font=font)
    for i, name in enumerate(class_names):
        draw.text((4, top + i * cell + cell // 2 - 6), name, fill="black", font=font)
        draw.text((left + k * cell + 6, top + i * cell + cell // 2 - 6), f"n={int(totals[i])}", fill="black", font=font)
        label = Image.new("RGB", (names_w, 14), "white")
        ImageDraw.Draw(label).text((0, 0), name, fill="black", font=font)
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (left + i * cell + cell // 2 - 7, top - names_w - 2))
        for j in range(k):
            shade = int(255 * (1 - rates[i, j].item() / 100))
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=(shade, shade, 255))
            draw.text(
                (box[0] + 4, box[1] + cell // 2 - 6),
                f"{rates[i, j].item():.0f}",
                fill="black" if shade > 110 else "white",
                font=font,
            )
    return image


PALETTE = (
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (23, 190, 207),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (0, 0, 128),
    (128, 0, 0),
    (0, 100, 0),
    (255, 0, 255),
)


def line_chart(
    series: dict[str, dict[int, float]],
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = True,
    colours: dict[str, tuple[int, int, int]] | None = None,
) -> Image.Image:
    """Lines of y against x on a log2 x axis (e.g. accuracy against sampler steps) or a linear one (e.g. against
    training steps), one per series, labelled. `colours` fixes a series' colour (so that one name keeps its
    colour across several charts); otherwise the palette is used in order."""
    width, height, left, bottom, top, legend = 700, 340, 60, 40, 30, 240
    xs = sorted({x for points in series.values() for x in points})
    ys = [y for points in series.values() for y in points.values()]
    low, high = math.floor(min(ys) - 1), math.ceil(max(ys) + 1)
    image = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    scale = math.log2 if log_x else float
    span_x = max(scale(xs[-1]) - scale(xs[0]), 1e-9)

    def point(x: float, y: float) -> tuple[float, float]:
        px = left + (width - left - legend - 10) * (scale(x) - scale(xs[0])) / span_x
        py = height - bottom - (height - bottom - top) * (y - low) / (high - low)
        return px, py

    draw.text((left, 8), title, fill="black", font=font)
    draw.line((left, top, left, height - bottom, width - legend, height - bottom), fill="black")
    for x in xs:
        px, _ = point(x, low)
        draw.text((px - 4, height - bottom + 6), str(x), fill="black", font=font)
    for y in range(low, high + 1, max(1, (high - low) // 6)):
        _, py = point(xs[0], y)
        draw.text((8, py - 6), f"{y}", fill="black", font=font)
        draw.line((left - 3, py, left, py), fill="black")
    draw.text((width // 2 - 60, height - 16), x_label, fill="black", font=font)
    draw.text((8, top - 16), y_label, fill="black", font=font)
    for i, (name, points) in enumerate(series.items()):
        colour = colours[name] if colours else PALETTE[i % len(PALETTE)]
        coords = [point(x, points[x]) for x in sorted(points)]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=2)
        for px, py in coords:
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colour)
        draw.text((width - legend + 10, top + 16 * i), name, fill=colour, font=font)
    return image


def bar_chart(bars: dict[str, tuple[float, float]], title: str, maximum: float = 100.0) -> Image.Image:
    """Horizontal bars of (value, spread) per label, the spread drawn as a whisker either side."""
    label_w, bar_w, bar_h = 260, 360, 16
    image = Image.new("RGB", (label_w + bar_w + 70, 30 + len(bars) * (bar_h + 6)), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    draw.text((8, 8), title, fill="black", font=font)
    for i, (label, (value, spread)) in enumerate(bars.items()):
        y = 30 + i * (bar_h + 6)
        x = lambda v: label_w + int(bar_w * max(0.0, min(v, maximum)) / maximum)  # noqa: E731
        draw.text((8, y + 2), label[:42], fill="black", font=font)
        draw.rectangle((label_w, y, x(value), y + bar_h), fill=(70, 110, 220))
        draw.line((x(value - spread), y + bar_h // 2, x(value + spread), y + bar_h // 2), fill="black", width=2)
        draw.text((x(value + spread) + 4, y + 2), f"{value:.1f}", fill="black", font=font)
    return image
