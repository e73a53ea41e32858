"""Emoji drawings -> arrays at one resolution, built once into a cache and checked by checksum.

Each drawing is rasterised (PNGs as shipped; SVGs with resvg at RENDER_SIZE px), cropped to the square around
its opaque pixels plus a fixed margin (the styles fill their canvases differently: OpenMoji about 77%, the
others 88-100%), composited on white and resized with antialiasing as the pipeline resizes any image. The
cache is `emoji-{R}px.npy` (N, 3, R, R) uint8 beside `emoji-{R}px.json` (one record per image, the concepts,
what was dropped and why, the package versions and a SHA-256 over both).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from ...utils.optional import require
from ..transforms import image_to_uint8
from .catalogue import Catalogue, Drawing, load_catalogue
from .packages import PACKAGES, EmojiDataError, emoji_root

RENDER_SIZE = 128  # SVG raster side before cropping (twice the PNGs' 64 px: crops stay sharp)
MARGIN = 0.06  # of the opaque box's side, on each side of the crop
CACHE_VERSION = 1  # bump when rendering changes, so caches built before are rebuilt


def rasterise(path: str) -> Image.Image:
    """A drawing as RGBA. SVGs through resvg (a renderer in the wheel: no system library needed)."""
    if path.endswith(".svg"):
        resvg_py = require("resvg_py", "emoji", "resvg-py")
        png = bytes(resvg_py.svg_to_bytes(svg_path=path, width=RENDER_SIZE, height=RENDER_SIZE))
        return Image.open(io.BytesIO(png)).convert("RGBA")
    with Image.open(path) as image:
        return image.convert("RGBA")


def crop_to_content(image: Image.Image, margin: float = MARGIN) -> Image.Image:
    """The square around the opaque pixels, `margin` added on each side, on white (transparent padding where the
    square leaves the canvas)."""
    box = image.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if box is None:
        raise ValueError("the drawing has no opaque pixel")
    left, top, right, bottom = box
    side = max(right - left, bottom - top) * (1 + 2 * margin)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    square = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    cropped = image.crop(square)  # PIL pads outside the canvas with transparent pixels
    background = Image.new("RGBA", cropped.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, cropped).convert("RGB")


def render(path: str, resolution: int) -> np.ndarray:
    """One drawing -> (3, R, R) uint8."""
    return image_to_uint8(crop_to_content(rasterise(path)), resolution, 3)


def _render_or_error(job: tuple[str, int]) -> np.ndarray | str:
    try:
        return render(*job)
    except Exception as error:  # noqa: BLE001 (a broken file is skipped and reported, not fatal)
        return f"{type(error).__name__}: {error}"


def cache_paths(resolution: int, root: str | Path | None = None) -> tuple[Path, Path]:
    base = emoji_root(root) / "built" / f"emoji-{resolution}px"
    return base.with_suffix(".npy"), base.with_suffix(".json")


def checksum(images: np.ndarray, records: list[dict]) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(json.dumps(records, sort_keys=True).encode())
    return digest.hexdigest()


def build_cache(resolution: int, root: str | Path | None = None, workers: int = 2, log=print) -> dict:
    """Render every drawing at `resolution` and write the cache; returns its index. Drawings that fail to render
    are skipped and listed in the index with the error."""
    start = time.perf_counter()
    catalogue = load_catalogue(root)
    jobs = [(d.path, resolution) for d in catalogue.drawings]
    with ProcessPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(_render_or_error, jobs, chunksize=64))
    kept = [(d, r) for d, r in zip(catalogue.drawings, results) if not isinstance(r, str)]
    failed = [{"path": d.path, "error": r} for d, r in zip(catalogue.drawings, results) if isinstance(r, str)]
    if not kept:
        raise EmojiDataError(f"no emoji drawing could be rendered (first error: {failed[0]['error']})")
    images = np.stack([r for _, r in kept])
    records = [_record(catalogue, d) for d, _ in kept]
    index = {
        "version": CACHE_VERSION,
        "resolution": resolution,
        "packages": {p.name: {"version": p.version, "integrity": p.integrity, "licence": p.licence} for p in PACKAGES},
        "concepts": [asdict(c) for c in catalogue.concepts],
        "images": records,
        "dropped_entries": catalogue.dropped,
        "failed_drawings": failed,
        "render": {"svg": f"resvg at {RENDER_SIZE} px", "margin": MARGIN, "resize": "PIL bicubic (antialiased)"},
        "checksum": checksum(images, records),
    }
    array_path, index_path = cache_paths(resolution, root)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(array_path.with_suffix(".tmp.npy"), images)
    array_path.with_suffix(".tmp.npy").replace(array_path)
    index_path.write_text(json.dumps(index) + "\n")
    log(
        f"emoji: {len(records)} images of {len(catalogue.concepts)} concepts at {resolution} px in "
        f"{time.perf_counter() - start:.0f} s ({len(failed)} drawings failed to render)"
    )
    for failure in failed[:5]:
        log(f"emoji: skipped {failure['path']}: {failure['error']}")
    return index


def _record(catalogue: Catalogue, drawing: Drawing) -> dict:
    return {
        "concept": drawing.concept,
        "name": catalogue.drawing_name(drawing),
        "style": drawing.style,
        "tone": drawing.tone,
    }


def load_cache(resolution: int, root: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """The cached arrays and index at `resolution`, built first if missing or out of date; the checksum is
    verified on every load."""
    array_path, index_path = cache_paths(resolution, root)
    index = json.loads(index_path.read_text()) if index_path.exists() and array_path.exists() else None
    if index is None or index.get("version") != CACHE_VERSION:
        index = build_cache(resolution, root)
    images = np.load(array_path)
    if checksum(images, index["images"]) != index["checksum"]:
        raise EmojiDataError(
            f"{array_path} does not match the checksum in {index_path.name}: the cache is damaged. Delete both "
            "files; they are rebuilt from the installed packages on the next use"
        )
    return images, index
