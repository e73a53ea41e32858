"""Generation accuracy on `shapes`, judged attribute by attribute by exact pixel analysis: the renderer that made
the data redraws the prompted scene with one attribute changed to each of its values, and the value whose drawing
is closest to the generated image is what the image shows: in RGB for colour, in brightness alone (max over
channels, relative to the brightest pixel) for shape, size and place, so that colour does not decide the shape.
Object count is read from the number of connected bright regions."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..data.shapes import COLOURS, PLACES, SHAPES, SIZES, ShapeScene, load_shapes, render
from .judge import generation_settings

ATTRIBUTE_VALUES = {"colour": tuple(COLOURS), "shape": SHAPES, "size": tuple(SIZES)}
BRIGHT = 140  # above the blend where two drawn objects touch, below every palette colour's brightest channel


def _distance(a: np.ndarray, b: np.ndarray, colour: bool) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if not colour:  # brightness relative to the image's brightest pixel: the colour's own intensity drops out
        a, b = (x.max(axis=2) / max(x.max(), 1.0) for x in (a, b))
    return float(np.abs(a - b).sum())


def _components(mask: np.ndarray, min_pixels: int = 2) -> int:
    """4-connected regions of at least `min_pixels` in a boolean mask (tiny images: a plain flood fill)."""
    seen = np.zeros_like(mask)
    count = 0
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        size, stack = 0, [(y, x)]
        while stack:
            i, j = stack.pop()
            if 0 <= i < mask.shape[0] and 0 <= j < mask.shape[1] and mask[i, j] and not seen[i, j]:
                seen[i, j] = True
                size += 1
                stack += [(i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)]
        count += size >= min_pixels
    return count


def judge_scene(image: np.ndarray, scene: ShapeScene) -> dict[str, bool]:
    """image (R, R, 3) uint8; scene: what the prompt asked for. Returns attribute -> shown as asked?"""
    resolution = image.shape[0]
    verdict = {}
    for attribute, values in ATTRIBUTE_VALUES.items():
        drawings = {}
        for value in values:
            first = dataclasses.replace(scene.objects[0], **{attribute: value})
            drawings[value] = np.asarray(
                render(dataclasses.replace(scene, objects=(first, *scene.objects[1:])), resolution)
            )
        best = min(values, key=lambda v: _distance(drawings[v], image, colour=attribute == "colour"))
        verdict[attribute] = best == getattr(scene.objects[0], attribute)
    if scene.place is not None:
        drawings = {p: np.asarray(render(dataclasses.replace(scene, place=p), resolution)) for p in PLACES}
        best = min(PLACES, key=lambda p: _distance(drawings[p], image, colour=False))
        verdict["place"] = best == scene.place
    verdict["count"] = _components(image.max(axis=2) > BRIGHT) == len(scene.objects)
    return verdict


def judge_scenes(images, scenes) -> dict[str, float]:
    """Per attribute, the percentage of PIL `images` that show what their `scenes` asked for."""
    verdicts = [judge_scene(np.asarray(im), s) for im, s in zip(images, scenes)]
    judged = {a: [v[a] for v in verdicts if a in v] for a in (*ATTRIBUTE_VALUES, "place", "count")}
    return {a: 100.0 * float(np.mean(found)) for a, found in judged.items() if found}  # place: one-object scenes


def shapes_generation_accuracy(
    pipe,
    num_images: int = 200,
    num_inference_steps: int = 50,
    guidance_scale: float = 3.0,
    seed: int = 0,
    split: str = "test",
    **options,
) -> dict:
    """Generate from the captions of a shapes split (`heldout`: compositions never trained on) and report, per
    attribute, the percentage of images that show the prompted value. `options` go to `generate` (candidates,
    self_guidance)."""
    if pipe.config.model.image_channels != 3:
        raise ValueError("shapes generation accuracy needs an RGB model (model.image_channels=3)")
    scenes = load_shapes(split, num_images, pipe.config.model.resolution, seed).scenes
    images = pipe.generate([s.caption() for s in scenes], num_inference_steps, guidance_scale, seed, **options)
    return {
        "per_attribute": judge_scenes(images, scenes),
        "images": num_images,
        "prompts": f"shapes {split} split captions",
        "judged_by": "redrawing the prompted scene per attribute value, nearest in L1; count by connected regions",
        **generation_settings(num_inference_steps, guidance_scale, seed, **options),
    }
