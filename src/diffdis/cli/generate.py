"""`diffdis generate`: a prompt -> images in a folder, or their grid in one image file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import DEFAULT_GENERATION_STEPS, DEFAULT_GUIDANCE
from ..samplers import DEFAULT_SAMPLER, sampler_names
from .common import Command, check_model, check_writable, load, positive, runtime_options, sampler_help, warn_unfamiliar

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument("--model", required=True, help="a saved pipeline folder (a run's model/) or a released model's name")
    g.add_argument("--prompt", required=True, help="the caption to draw")
    g.add_argument("--num-images", type=positive, default=8, help="how many images (default 8)")
    g.add_argument(
        "--steps", type=positive, default=DEFAULT_GENERATION_STEPS, help="sampler steps (default %(default)s)"
    )
    g.add_argument(
        "--guidance",
        type=float,
        default=DEFAULT_GUIDANCE,
        help="classifier-free guidance, 1 = none (default %(default)s)",
    )
    g.add_argument("--sampler", choices=sampler_names("image"), default=DEFAULT_SAMPLER, help=sampler_help("image"))
    g.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    g.add_argument(
        "--candidates",
        type=positive,
        default=1,
        help="draw K samples per image and keep the one the model's own discrimination scores highest (default 1)",
    )
    g.add_argument(
        "--self-guidance",
        type=float,
        default=0.0,
        help="weight of guidance by the model's own discrimination during sampling (default 0 = none)",
    )
    g.add_argument(
        "--out",
        required=True,
        help="a folder (no extension): one PNG per image and grid.png; or an image file (.png, .jpg): the grid only",
    )
    runtime_options(g)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(
            f"--out {out}: {out.suffix!r} is not an image format; use a folder (no extension) for one file per "
            f"image, or a file ending in {', '.join(IMAGE_SUFFIXES)} for the grid"
        )
    if not out.suffix and out.is_file():
        raise ValueError(f"--out {out} is an existing file; a folder name without an extension is expected")
    check_writable(out, "--out")
    check_model(args.model)
    from ..utils.images import save_images

    pipe = load(args)
    warn_unfamiliar(pipe, [args.prompt], "generate")
    images = pipe.generate(
        [args.prompt] * args.num_images,
        args.steps,
        args.guidance,
        args.seed,
        args.sampler,
        candidates=args.candidates,
        self_guidance=args.self_guidance,
    )
    print(save_images(images, out))
    return 0


GENERATE = Command("generate", "generate images from a text prompt", arguments, run)
