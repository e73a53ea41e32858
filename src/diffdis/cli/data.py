"""`diffdis pack`, `encode` and `emoji`: data written to shards, shards with their encodings precomputed, and the
emoji art installed from the npm registry."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from .common import Command, positive


def pack_arguments(pk: argparse.ArgumentParser) -> None:
    pk.add_argument(
        "source", help="fashion-mnist[:train|test], shapes, idx:IMAGES,LABELS or folder:DIR (with metadata.jsonl)"
    )
    pk.add_argument("--out", required=True, help="folder for 00000.tar, 00001.tar, ...")
    pk.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    pk.add_argument("--num", type=int, default=None, help="pack only the first N samples (required for shapes)")
    pk.add_argument("--resolution", type=int, default=28, help="image side for built-in and IDX sets (default 28)")
    pk.add_argument("--labels", help="comma-separated class names for idx: sources")
    pk.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    pk.add_argument("--seed", type=int, default=0, help="seed of the caption templates / shapes scenes (default 0)")


def _shard_pattern(out: str, shards: list[Path]) -> str:
    return f"{out}/{{00000..{len(shards) - 1:05d}}}.tar" if len(shards) > 1 else str(shards[0])


def pack(args: argparse.Namespace) -> int:
    from ..data.datasets import FASHION_MNIST_DIR
    from ..data.pack import pack_samples, write_shards

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    samples = pack_samples(
        args.source, args.resolution, args.num, args.seed, labels, args.data_dir or FASHION_MNIST_DIR
    )
    shards = write_shards(samples, args.out, args.shard_size)
    print(f"wrote {len(shards)} shards; train on them with --data 'wds:{_shard_pattern(args.out, shards)}'")
    return 0


def encode_arguments(en: argparse.ArgumentParser) -> None:
    en.add_argument("--model", required=True, help="a saved DiffDis pipeline or a Stable Diffusion folder")
    en.add_argument("--data", required=True, help="captioned files as for train --data (wds:, folder:, csv:)")
    en.add_argument("--out", required=True, help="folder for the encoded shards 00000.tar, ...")
    en.add_argument("--resolution", type=int, help="image side to encode at (default: the model's; SD: 256)")
    en.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    en.add_argument("--batch-size", type=int, default=64, help="images per encoder batch (default 64)")
    en.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def encode(args: argparse.Namespace) -> int:
    from ..data.pack import write_shards
    from ..training.precompute import encoded_samples, encoders

    pipe = encoders(args.model, args.resolution, args.device)
    skipped = Counter()
    shards = write_shards(encoded_samples(pipe, args.data, args.batch_size, skipped), args.out, args.shard_size)
    pattern = _shard_pattern(args.out, shards)
    print(f"wrote {len(shards)} encoded shards; skipped {dict(skipped) or 'none'}; train with --data 'wds:{pattern}'")
    return 0


def emoji_arguments(em: argparse.ArgumentParser) -> None:
    em.add_argument(
        "action",
        choices=("install", "build", "info"),
        help="install the packages; build a resolution's cache (installs first); info: what is installed and built",
    )
    em.add_argument("--resolution", type=positive, default=16, help="image side of the cache to build (default 16)")


def emoji(args: argparse.Namespace) -> int:
    from ..data.emoji import EmojiData, build_cache, install_packages
    from ..data.emoji.images import cache_paths
    from ..data.emoji.packages import emoji_root, missing_packages

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


PACK = Command(
    "pack", "write WebDataset shards (image, caption) from a dataset, for streaming training", pack_arguments, pack
)
ENCODE = Command(
    "encode", "copy file sources with VAE latents and text encodings precomputed", encode_arguments, encode
)
EMOJI = Command(
    "emoji", "install the emoji art from the npm registry (pinned, hash-checked) and build it", emoji_arguments, emoji
)
