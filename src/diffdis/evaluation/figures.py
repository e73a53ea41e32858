"""PNG figures drawn with PIL alone: image grids and a confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont


def image_grid(
    rows: Sequence[Sequence[Image.Image]], labels: Sequence[str] | None = None, scale: int = 4
) -> Image.Image:
    """rows of equally sized images -> one RGB grid, each image enlarged `scale` times, a label left of each row."""
    w, h = rows[0][0].size
    cell_w, cell_h = w * scale, h * scale
    label_w = 110 if labels else 0
    grid = Image.new("RGB", (label_w + cell_w * max(len(r) for r in rows), cell_h * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
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
    """Row-normalised confusion matrix as a heat map with the counts written in each cell."""
    k = len(class_names)
    margin = 120
    image = Image.new("RGB", (margin + k * cell + cell, margin + k * cell), "white")  # spare column: long labels
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    rates = confusion.float() / confusion.sum(1, keepdim=True).clamp_min(1)
    for i in range(k):
        draw.text((4, margin + i * cell + cell // 2 - 6), class_names[i][:18], fill="black", font=font)
        draw.text((margin + i * cell + 2, margin - 14 - 12 * (i % 2)), class_names[i][:8], fill="black", font=font)
        for j in range(k):
            shade = int(255 * (1 - rates[i, j].item()))
            box = (margin + j * cell, margin + i * cell, margin + (j + 1) * cell - 1, margin + (i + 1) * cell - 1)
            draw.rectangle(box, fill=(shade, shade, 255))
            draw.text(
                (box[0] + 4, box[1] + cell // 2 - 6),
                str(int(confusion[i, j])),
                fill="black" if shade > 110 else "white",
                font=font,
            )
    draw.text((4, 4), "rows: true class, columns: predicted", fill="black", font=font)
    return image


def line_chart(
    series: dict[str, dict[int, float]], title: str, x_label: str, y_label: str, log_x: bool = True
) -> Image.Image:
    """Lines of y against x on a log2 x axis (e.g. accuracy against sampler steps) or a linear one (e.g. against
    training steps), one per series, labelled."""
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
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]
    for i, (name, points) in enumerate(series.items()):
        colour = colours[i % len(colours)]
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
