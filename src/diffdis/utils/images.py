"""Image grids (PIL): samples in labelled rows, as training, the demos and `diffdis generate` write them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


def save_images(images: Sequence[Image.Image], out: str | Path) -> str:
    """`out` with a suffix: the images' grid in that file; without: one PNG per image and grid.png in that
    folder. Returns what was written, in words."""
    out = Path(out)
    grid = image_grid([images], scale=max(1, 128 // images[0].size[0]))
    if out.suffix:
        out.parent.mkdir(parents=True, exist_ok=True)
        grid.save(out)
        return f"wrote a grid of {len(images)} images to {out}"
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.save(out / f"{i:03d}.png")
    grid.save(out / "grid.png")
    return f"wrote {len(images)} images to {out}/000.png ... {out}/{len(images) - 1:03d}.png and their grid.png"
