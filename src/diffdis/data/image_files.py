"""Reading image files, one way for every caller (training shards, evaluation folders, the CLI's files, the web
app's uploads): which files count as images, and decoding one, with its pixel count read from the header and
checked before the full decode. Every failure is an UnreadableImage that says why."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")
MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit, the default everywhere but the app


class UnreadableImage(ValueError):
    """A file or byte string that is not an image this library can read; `reason` is short, for counts."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def is_image_file(path: Path) -> bool:
    return path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def image_files(folder: str | Path, limit: int | None = None) -> list[Path]:
    """The image files under `folder` (any depth), sorted; at most `limit`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return files[:limit] if limit else files


def read_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS, draft: tuple | None = None) -> Image.Image:
    """One image, decoded. Its size is read from the header first and an image over `max_pixels` is refused
    without decoding; `draft` = (mode, (w, h)) lets JPEG decode at a reduced size (training shards)."""
    if isinstance(source, bytes) and not source:
        raise UnreadableImage("empty image")
    name = "image" if isinstance(source, bytes) else Path(source).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's warnings on odd files are not errors here
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)  # the header only
            with image:
                width, height = image.size
                if width * height > max_pixels:
                    detail = f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} MP)"
                    raise UnreadableImage("image too large", detail)
                if draft:
                    image.draft(*draft)
                image.load()
                return image.copy()
    except UnreadableImage:
        raise  # the size refusal above: a ValueError, not to be read as undecodable
    except Image.DecompressionBombError:
        detail = f"{name} has far more pixels than the {max_pixels / 1e6:.0f} MP limit"
        raise UnreadableImage("image too large", detail) from None
    except (OSError, ValueError, SyntaxError, EOFError, ZeroDivisionError, TypeError):
        raise UnreadableImage("undecodable image", name) from None


class NothingUsable(ValueError):
    """Not one of the given image files could be read."""


def read_images(paths: Sequence[Path]) -> tuple[list[int], list[Image.Image], dict[str, str]]:
    """The positions of the files that decode as images, their images, and {file: reason} for each one that does
    not (skipped, so that one bad file does not end a batch job). Raises NothingUsable when none decodes."""
    kept, images, unreadable = [], [], {}
    for i, path in enumerate(paths):
        try:
            images.append(read_image(path))
            kept.append(i)
        except UnreadableImage as error:
            unreadable[str(path)] = str(error)
    if not images:
        first = next(iter(unreadable.items()))
        raise NothingUsable(f"none of the {len(paths)} image files could be read (first: {first[0]}: {first[1]})")
    return kept, images, unreadable
