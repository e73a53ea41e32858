"""What the web app accepts from a browser, checked before any model work: uploaded images (size, pixel count
read from the header before a full decode, format), prompts, label and caption lists, and numeric settings.
Every refusal is an InputError whose message names the problem and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..data.captions import candidate_labels
from ..data.image_files import UnreadableImage, read_image


class InputError(ValueError):
    """Something the user sent that the app cannot use; the message says what to change."""


@dataclass(frozen=True)
class Limits:
    upload_bytes: int = 10 * 2**20  # per file; the server refuses larger uploads before they are stored
    pixels: int = 25_000_000  # per image, read from the header: larger ones are refused without decoding
    images: int = 16  # images per classify request
    labels: int = 100  # labels (or captions) per request
    prompt_chars: int = 300
    num_images: int = 8  # images per generate request
    steps: int = 200  # sampler steps (generation and query)
    candidates: int = 8
    queue: int = 8  # requests waiting for the model; more are refused at once


def open_image(path: str | Path, limits: Limits) -> Image.Image:
    """One uploaded image, decoded only after its file size and its pixel count (from the header) are checked."""
    path = Path(path)
    name, size = path.name, path.stat().st_size
    if size > limits.upload_bytes:
        raise InputError(
            f"{name} is {size / 2**20:.1f} MB; the app reads images up to {limits.upload_bytes / 2**20:.0f} MB"
        )
    try:
        return read_image(path, limits.pixels)
    except UnreadableImage as error:
        if error.reason == "image too large":
            raise InputError(
                f"{error.detail}; the app reads images up to {limits.pixels / 1e6:.0f} MP: scale it down first"
            ) from None
        raise InputError(f"{name} is not an image this app can read; use PNG, JPEG or WebP") from None


def open_images(paths: Sequence[str | Path] | None, limits: Limits) -> list[Image.Image]:
    """Every uploaded image of a request, or an InputError naming the first one that cannot be used."""
    paths = [p for p in (paths or []) if p]
    if not paths:
        raise InputError("no image was given: upload one or more images, or pick an example")
    if len(paths) > limits.images:
        raise InputError(f"{len(paths)} images were given; the app classifies up to {limits.images} at a time")
    return [open_image(p, limits) for p in paths]


def labels(text: str | None, limits: Limits, what: str = "labels") -> list[str]:
    """At least two distinct names (comma- or line-separated): with one, every image gets it."""
    try:
        names = candidate_labels(text or "", what)
    except ValueError as error:
        raise InputError(f"{error}; separate them by commas or new lines") from None
    if len(names) > limits.labels:
        raise InputError(f"{len(names)} {what} were given; the app takes up to {limits.labels}")
    return names


def captions(text: str | None, limits: Limits) -> list[str]:
    """Captions, one per line (a caption may contain commas)."""
    lines = list(dict.fromkeys(line.strip() for line in (text or "").splitlines() if line.strip()))
    if len(lines) < 2:
        raise InputError("give at least two captions, one per line")
    if len(lines) > limits.labels:
        raise InputError(f"{len(lines)} captions were given; the app takes up to {limits.labels}")
    return lines


def prompt(text: str | None, limits: Limits) -> str:
    text = (text or "").strip()
    if not text:
        raise InputError("the prompt is empty: type what the image should show, e.g. 'a photo of a dress.'")
    if len(text) > limits.prompt_chars:
        raise InputError(f"the prompt has {len(text)} characters; the app takes up to {limits.prompt_chars}")
    return text


def whole(value: float | None, name: str, low: int, high: int) -> int:
    """A whole-number setting within [low, high] (sliders send floats; API clients may send anything)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number from {low} to {high}; got {value!r}") from None
    if number != value or not low <= number <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}; got {value!r}")
    return number
