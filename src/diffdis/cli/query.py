"""`diffdis classify`, `retrieve` and `evaluate`: a saved pipeline answering image -> text on the built-in test set,
on files of your own, or on a whole evaluation suite."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    Command,
    check_model,
    check_writable,
    load,
    positive,
    query_kwargs,
    query_options,
    report_unreadable,
    runtime_options,
    warn_unfamiliar,
    write_json,
)


def _common(c: argparse.ArgumentParser, images_help: str) -> None:
    c.add_argument("--model", required=True, help="a saved pipeline folder (a run's model/) or a released model's name")
    c.add_argument("--dataset", choices=("fashion-mnist",), help="built-in real test set")
    c.add_argument("--data-dir", default=None, help="folder of the dataset's IDX files (default: Debian's)")
    c.add_argument("--images", help=images_help)
    c.add_argument("--num-images", type=positive, default=None, help="use only this many images (fixed subset)")
    query_options(c)
    runtime_options(c)
    c.add_argument("--json", help="write the results to this JSON file")


def classify_arguments(c: argparse.ArgumentParser) -> None:
    _common(c, "folder of images (files directly inside, or in sub-folders named by class for accuracy)")
    c.add_argument("--labels", help="comma-separated class names (required with --images)")
    c.add_argument("--templates", help="'|'-separated prompt templates with {} (default: built-in set)")
    c.add_argument("--top-k", type=positive, default=1, help="print each image's K most probable labels (default 1)")


def retrieve_arguments(c: argparse.ArgumentParser) -> None:
    _common(c, 'folder of images with metadata.jsonl lines {"file_name": ..., "text": ...}')


def evaluate_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--model", required=True, help="a saved pipeline folder (a run's model/) or a released model's name")
    e.add_argument(
        "--suite",
        default="default",
        help="a suite of evaluation/suite.py (default, fashion, shapes, emoji, emoji-val), or evaluation sets joined "
        "by ',' (registered names, or classes:DIR and idx:IMAGES,LABELS for your own)",
    )
    e.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    e.add_argument("--num-images", type=positive, default=None, help="at most this many images per set (fixed subset)")
    query_options(e)
    runtime_options(e)
    e.add_argument("--json", help="write the results to this JSON file")


def _check_inputs(args: argparse.Namespace) -> None:
    """What the three read and write, checked before the model loads: the built-in test set (`--dataset`), the
    model folder, and the folder of `--json`."""
    from ..data.datasets import FASHION_MNIST_DIR, FASHION_MNIST_FILES, find_idx

    if getattr(args, "dataset", None):
        for stem in FASHION_MNIST_FILES["test"]:
            find_idx(Path(args.data_dir or FASHION_MNIST_DIR), stem)  # names the missing file and how to get it
    check_model(args.model, lit=args.command == "evaluate")
    if args.json:
        check_writable(Path(args.json), "--json")


def _dataset(args: argparse.Namespace, pipe):
    from ..data.datasets import FASHION_MNIST_DIR, fixed_subset, load_fashion_mnist

    m = pipe.config.model
    data = load_fashion_mnist("test", m.resolution, m.image_channels, args.data_dir or FASHION_MNIST_DIR)
    return fixed_subset(data, args.num_images) if args.num_images else data


def _templates(text: str | None) -> list[str] | None:
    if text is None:
        return None
    templates = [t for t in text.split("|") if t.strip()]
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"--templates {text!r}: give '|'-separated templates, each with {{}} for the class name")
    return templates


def classify(args: argparse.Namespace) -> int:
    from ..data.captions import candidate_labels
    from ..data.image_files import image_files
    from ..evaluation.folders import classify_files
    from ..evaluation.zero_shot import zero_shot

    if bool(args.dataset) == bool(args.images):
        raise ValueError("give exactly one of --dataset fashion-mnist or --images FOLDER --labels a,b,c")
    if args.images and not args.labels:
        raise ValueError("--images needs --labels a,b,c (the candidate class names)")
    labels = candidate_labels(args.labels, "--labels") if args.images else None
    files = image_files(args.images, args.num_images) if args.images else None
    templates = _templates(args.templates)
    _check_inputs(args)
    pipe = load(args)
    query = query_kwargs(args)
    result: dict = {"model": str(args.model), "templates": templates or "built-in evaluation templates", **query}
    if args.dataset:
        data = _dataset(args, pipe)
        result.update(dataset=args.dataset, images=len(data), **zero_shot(pipe, data, templates, **query).summary())
    else:
        warn_unfamiliar(pipe, labels, "classify")
        result.update(classify_files(pipe, files, labels, templates, args.top_k, **query))
        for file, best in result["top_k"].items():
            print(file + "\t" + "\t".join(f"{label} {p:.3f}" for label, p in best))
    if "top1" in result:
        print(f"top-1 on {result['images']} images: {result['top1']:.2f}%")
    report_unreadable(result.get("unreadable", {}))
    write_json(args.json, result)
    return 0


def retrieve(args: argparse.Namespace) -> int:
    from ..evaluation.folders import retrieve_folder, retrieve_labelled

    if bool(args.dataset) == bool(args.images):
        raise ValueError("give exactly one of --dataset fashion-mnist or --images FOLDER (with metadata.jsonl)")
    if args.images and not (Path(args.images) / "metadata.jsonl").is_file():
        raise FileNotFoundError(
            f"--images {args.images}: metadata.jsonl (one {{'file_name', 'text'}} per line) is missing"
        )
    _check_inputs(args)
    pipe = load(args)
    query = query_kwargs(args)
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
        report_unreadable(result["unreadable"])
    write_json(args.json, {"model": str(args.model), **query, **result})
    return 0


def evaluate(args: argparse.Namespace) -> int:
    _check_inputs(args)
    from ..evaluation.suite import evaluate as run_suite
    from ..evaluation.suite import summary_lines

    pipe = load(args)
    query = query_kwargs(args)
    if args.data_dir:
        query["data_dir"] = args.data_dir
    result = {
        "model": str(args.model),
        "suite": args.suite,
        **run_suite(pipe, args.suite, max_images=args.num_images, **query),
    }
    print("\n".join(summary_lines(result)))
    write_json(args.json, result)
    return 0


CLASSIFY = Command("classify", "zero-shot classification", classify_arguments, classify)
RETRIEVE = Command("retrieve", "image-text retrieval", retrieve_arguments, retrieve)
EVALUATE = Command("evaluate", "evaluate a saved pipeline on a whole evaluation suite", evaluate_arguments, evaluate)
