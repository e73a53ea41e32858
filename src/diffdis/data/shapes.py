"""`shapes`: a procedural captioned dataset with known ground truth, for compositional evaluation.

Each image holds one or two objects, each with a colour, a shape and a size; one object sits in one of five
places, two objects stand in a spatial relation. Captions are compositional ("a small red triangle above a
large blue circle"). Sample i depends only on (seed, i), so the set is deterministic and of any size.

Splits: `train` and `val` never contain the held-out colour-shape pairs (HELDOUT_PAIRS) in any object;
`heldout` has them in its first object, so compositional generalisation can be measured; `test` draws from all
pairs. Splits use disjoint random streams, but the scene space is finite (240 one-object scenes), so a `test`
scene can repeat a `train` scene exactly; only `heldout` is guaranteed unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from .datasets import LabelledImages

SHAPES_EVAL_SETS = (  # data/eval_sets.py loads them
    "shapes-colour",
    "shapes-shape",
    "shapes-count",
    "shapes-place",
    "shapes-heldout-colour",
    "shapes-heldout-shape",
)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
SIZES: dict[str, float] = {"small": 0.22, "large": 0.38}  # object side as a fraction of the canvas
PLACES: dict[str, tuple[float, float]] = {  # centre (x, y) of a lone object, fractions of the canvas
    "in the middle": (0.5, 0.5),
    "on the left": (0.25, 0.5),
    "on the right": (0.75, 0.5),
    "at the top": (0.5, 0.25),
    "at the bottom": (0.5, 0.75),
}
RELATIONS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {  # first object, second object
    "above": ((0.5, 0.27), (0.5, 0.73)),
    "below": ((0.5, 0.73), (0.5, 0.27)),
    "left of": ((0.27, 0.5), (0.73, 0.5)),
    "right of": ((0.73, 0.5), (0.27, 0.5)),
}
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("red", "circle"), ("blue", "triangle"), ("green", "square"), ("yellow", "cross")}
)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "count": ("one shape", "two shapes"),
    "place": tuple(PLACES),
}
SPLIT_OFFSETS = {"train": 0, "val": 10**9, "test": 2 * 10**9, "heldout": 3 * 10**9}
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class ShapeObject:
    colour: str
    shape: str
    size: str

    def words(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class ShapeScene:
    objects: tuple[ShapeObject, ...]
    place: str | None  # one object
    relation: str | None  # two objects

    def caption(self) -> str:
        first = self.objects[0].words()
        if len(self.objects) == 1:
            return f"a {first} {self.place}"
        return f"a {first} {self.relation} a {self.objects[1].words()}"

    def label(self, attribute: str) -> int:
        """Index of this scene's value in ATTRIBUTES[attribute] (colour and shape of the first object;
        place only for one object, -1 otherwise)."""
        first = self.objects[0]
        value = {
            "colour": first.colour,
            "shape": first.shape,
            "count": ATTRIBUTES["count"][len(self.objects) - 1],
            "place": self.place,
        }[attribute]
        return ATTRIBUTES[attribute].index(value) if value is not None else -1


def _object(rng: np.random.Generator, allowed: list[tuple[str, str]]) -> ShapeObject:
    colour, shape = allowed[int(rng.integers(len(allowed)))]
    return ShapeObject(colour, shape, tuple(SIZES)[int(rng.integers(len(SIZES)))])


def scene(split: str, index: int, seed: int = 0) -> ShapeScene:
    """The scene of sample `index` of `split` (deterministic)."""
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"unknown shapes split {split!r}; use one of {', '.join(SPLIT_OFFSETS)}")
    rng = np.random.default_rng([seed, SPLIT_OFFSETS[split] + index])
    every = [(c, s) for c in COLOURS for s in SHAPES]
    seen = [pair for pair in every if pair not in HELDOUT_PAIRS]
    first_pool = {"train": seen, "val": seen, "test": every, "heldout": sorted(HELDOUT_PAIRS)}[split]
    other_pool = seen if split in ("train", "val") else every
    objects = [_object(rng, first_pool)]
    if rng.random() < 0.5:
        objects.append(_object(rng, other_pool))
        return ShapeScene(tuple(objects), None, tuple(RELATIONS)[int(rng.integers(len(RELATIONS)))])
    return ShapeScene(tuple(objects), tuple(PLACES)[int(rng.integers(len(PLACES)))], None)


def _draw(draw: ImageDraw.ImageDraw, obj: ShapeObject, centre: tuple[float, float], side: int) -> None:
    half = SIZES[obj.size] * side / 2
    cx, cy = centre[0] * side, centre[1] * side
    box = (cx - half, cy - half, cx + half, cy + half)
    colour = COLOURS[obj.colour]
    if obj.shape == "circle":
        draw.ellipse(box, fill=colour)
    elif obj.shape == "square":
        draw.rectangle(box, fill=colour)
    elif obj.shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=colour)
    else:  # cross
        arm = half / 3
        draw.rectangle((cx - half, cy - arm, cx + half, cy + arm), fill=colour)
        draw.rectangle((cx - arm, cy - half, cx + arm, cy + half), fill=colour)


def render(s: ShapeScene, resolution: int) -> Image.Image:
    """RGB image of a scene on a black background, drawn large and downsampled (antialiased)."""
    side = resolution * _SUPERSAMPLE
    image = Image.new("RGB", (side, side), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    centres = [PLACES[s.place]] if s.place else list(RELATIONS[s.relation])
    for obj, centre in zip(s.objects, centres):
        _draw(draw, obj, centre, side)
    return image.resize((resolution, resolution), Image.Resampling.BOX)


@dataclass(frozen=True)
class Shapes:
    """`size` samples of one split as uint8 images (N, 3, R, R) with their scenes and captions."""

    images: torch.Tensor
    scenes: tuple[ShapeScene, ...]

    @property
    def captions(self) -> list[str]:
        return [s.caption() for s in self.scenes]

    def attribute_set(self, attribute: str) -> LabelledImages:
        """The images labelled by one attribute, for zero-shot classification; images without a value for it
        (place of a two-object scene) are left out."""
        if attribute not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {attribute!r}; use one of {', '.join(ATTRIBUTES)}")
        labels = torch.tensor([s.label(attribute) for s in self.scenes])
        keep = labels >= 0
        return LabelledImages(self.images[keep], labels[keep], ATTRIBUTES[attribute])

    def without(self, other: Shapes) -> tuple[Shapes, float]:
        """These samples less every scene that `other` holds too (a scene is drawn from its caption alone, so
        equal captions are equal images), and the fraction removed: e.g. the test scenes never trained on."""
        seen = set(other.captions)
        keep = [i for i, c in enumerate(self.captions) if c not in seen]
        removed = 1 - len(keep) / len(self.scenes) if self.scenes else 0.0
        return Shapes(self.images[keep], tuple(self.scenes[i] for i in keep)), removed


def load_shapes(split: str, size: int, resolution: int, seed: int = 0) -> Shapes:
    scenes = tuple(scene(split, i, seed) for i in range(size))
    arrays = [np.asarray(render(s, resolution)).transpose(2, 0, 1) for s in scenes]
    return Shapes(torch.from_numpy(np.stack(arrays)), scenes)
