"""Image-caption files on disk: WebDataset shards (as img2dataset writes them), image folders with
`metadata.jsonl` (the diffusers convention) and CSV files of path,caption (the open_clip convention).

Each source yields *pending* samples for one epoch and one slot (one loader worker of one process): the
sample's key and a `read()` that returns its raw members ({extension: bytes}). Reading is separate so that a
resumed run can pass over samples it already trained on without reading their bytes (tar headers only).
Decoding raw members into an image array (or cached encodings) and a caption is `decode_sample`, shared by
every source.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..specs import CAPTIONED, DataSpec, forms
from ..utils.optional import require
from .image_files import IMAGE_EXTENSIONS, UnreadableImage, read_image
from .transforms import image_to_uint8

CAPTION_KEYS = ("caption", "text", "title", "txt")  # json fields that may hold the caption, in order
CSV_IMAGE_COLUMNS = ("filepath", "file_name", "path", "image")
CSV_CAPTION_COLUMNS = ("title", "caption", "text")


@dataclass
class Pending:
    key: str
    read: Callable[[], dict[str, bytes]]  # valid until the next sample of the same source is pulled


class SampleError(ValueError):
    """A sample that cannot be used; `reason` is the counter it is reported under."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------------------------ sources
class TarShards:
    """WebDataset shards. `pattern` may use braces: /data/cc3m/{00000..00331}.tar, or list several with '::'."""

    def __init__(self, pattern: str):
        expand = require("braceexpand", "train").braceexpand  # {00000..00331}
        self.shards = [p for part in pattern.split("::") for p in expand(part)]
        missing = [p for p in self.shards if not Path(p).is_file()]
        if not self.shards or missing:
            raise FileNotFoundError(
                f"webdataset pattern {pattern!r}: {len(missing)} of {len(self.shards)} shards do not exist "
                f"(first: {missing[0] if missing else pattern})"
            )
        self.name = pattern

    def __len__(self) -> int:
        return len(self.shards)

    def check_slots(self, slots: int) -> None:
        if len(self.shards) < slots:
            raise ValueError(
                f"{self.name} has {len(self.shards)} shards for {slots} loader slots (processes x "
                "train.num_workers); every slot needs at least one shard: write smaller shards "
                "(diffdis pack --shard-size) or lower train.num_workers"
            )

    def epoch(self, epoch: int, slot: int, slots: int, seed: int, errors: Callable[[str], None]) -> Iterator[Pending]:
        order = np.random.default_rng([seed, epoch]).permutation(len(self.shards))
        for index in order[slot::slots]:
            yield from _tar_samples(self.shards[index], errors)


def _tar_samples(path: str, errors: Callable[[str], None]) -> Iterator[Pending]:
    """Group consecutive members by key (the name up to the first dot of the basename). Only headers are read
    here; `read()` seeks to the members' data."""
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError):
        errors("unreadable shard")
        return
    with tar:
        key, group = None, []
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, OSError, EOFError):
                errors("truncated shard")
                info = None
            if info is not None and not info.isfile():
                continue
            this_key = _member_key(info.name)[0] if info is not None else None
            if group and this_key != key:
                yield Pending(key, _tar_reader(tar, list(group)))
                group = []
            if info is None:
                return
            key = this_key
            group.append(info)


def _member_key(name: str) -> tuple[str, str]:
    """ "shard/000123.jpg" -> ("shard/000123", "jpg"): the sample key and the member's extension."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _tar_reader(tar: tarfile.TarFile, infos: list[tarfile.TarInfo]) -> Callable[[], dict[str, bytes]]:
    def read() -> dict[str, bytes]:
        members = {}
        for info in infos:
            handle = tar.extractfile(info)
            data = handle.read() if handle else b""
            if len(data) != info.size:
                raise SampleError("truncated member")
            members[_member_key(info.name)[1]] = data
        return members

    return read


class _FileList:
    """A list of (image path, caption) split by slot after an epoch-wise shuffle."""

    def __init__(self, name: str, items: list[tuple[Path, str]]):
        if not items:
            raise ValueError(f"{name} lists no images")
        self.name, self.items = name, items

    def __len__(self) -> int:
        return len(self.items)

    def check_slots(self, slots: int) -> None:
        if len(self.items) < slots:
            raise ValueError(f"{self.name} has {len(self.items)} images for {slots} loader slots")

    def epoch(self, epoch: int, slot: int, slots: int, seed: int, errors: Callable[[str], None]) -> Iterator[Pending]:
        order = np.random.default_rng([seed, epoch]).permutation(len(self.items))
        for index in order[slot::slots]:
            path, caption = self.items[index]
            yield Pending(str(path), _file_reader(path, caption))


def _file_reader(path: Path, caption: str) -> Callable[[], dict[str, bytes]]:
    def read() -> dict[str, bytes]:
        try:
            data = path.read_bytes()
        except OSError:
            raise SampleError("missing image file") from None
        return {path.suffix.lower().lstrip(".") or "img": data, "txt": caption.encode("utf-8")}

    return read


def image_folder(folder: str) -> _FileList:
    """A folder with `metadata.jsonl`: one JSON object per line, {"file_name": ..., "text": ...}."""
    meta = Path(folder) / "metadata.jsonl"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} does not exist; an image folder needs metadata.jsonl with file_name and text")
    items = []
    for number, line in enumerate(meta.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            caption = next(str(row[k]) for k in ("text", *CAPTION_KEYS) if k in row)
            items.append((Path(folder) / row["file_name"], caption))
        except (json.JSONDecodeError, KeyError, StopIteration, TypeError):
            expected = "{'file_name': ..., 'text': ...}"
            raise ValueError(f"{meta}, line {number}: expected {expected}, got {line[:80]!r}") from None
    return _FileList(f"folder:{folder}", items)


def csv_file(path: str) -> _FileList:
    """A CSV or TSV file with a header naming an image column (filepath, file_name, path or image) and a caption
    column (title, caption or text). Relative image paths are relative to the file's folder."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"CSV file {file} does not exist")
    text = file.read_text(encoding="utf-8", errors="replace")
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    rows = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    columns = rows.fieldnames or []
    image_col = next((c for c in CSV_IMAGE_COLUMNS if c in columns), None)
    caption_col = next((c for c in CSV_CAPTION_COLUMNS if c in columns), None)
    if image_col is None or caption_col is None:
        raise ValueError(
            f"{file}: the header {columns} needs an image column ({', '.join(CSV_IMAGE_COLUMNS)}) and a caption "
            f"column ({', '.join(CSV_CAPTION_COLUMNS)})"
        )
    items = [(file.parent / row[image_col], row[caption_col] or "") for row in rows if row.get(image_col)]
    return _FileList(f"csv:{path}", items)


# ----------------------------------------------------------------------------------------------- decoding
def decode_caption(members: dict[str, bytes]) -> str:
    if "txt" in members:
        raw = members["txt"]
    elif "json" in members:
        try:
            meta = json.loads(members["json"])
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SampleError("bad json") from None
        value = next((meta[k] for k in CAPTION_KEYS if isinstance(meta, dict) and meta.get(k)), None)
        if value is None:
            raise SampleError("missing caption")
        raw = str(value).encode("utf-8")
    else:
        raise SampleError("missing caption")
    try:
        caption = raw.decode("utf-8")
    except UnicodeDecodeError:
        caption = raw.decode("latin-1")  # never fails; mis-encoded text beats a lost sample
    caption = " ".join(caption.replace("\x00", " ").split())
    if not caption:
        raise SampleError("empty caption")
    return caption


def decode_image(data: bytes, resolution: int, channels: int) -> np.ndarray:
    """Encoded image bytes -> (channels, resolution, resolution) uint8, any mode and size."""
    try:
        image = read_image(data, draft=("RGB" if channels == 3 else "L", (2 * resolution, 2 * resolution)))
    except UnreadableImage as error:
        raise SampleError(error.reason) from None
    return image_to_uint8(image, resolution, channels)


def decode_sample(members: dict[str, bytes], resolution: int, channels: int) -> dict[str, np.ndarray | str]:
    """Raw members of one sample -> {"caption", "image" (C, R, R) uint8} or, for samples written by `diffdis
    encode`, {"caption", "latent" (2C, h, w) VAE moments, "c" (L, D), "e" (D,)}. SampleError says what was wrong."""
    sample: dict[str, np.ndarray | str] = {"caption": decode_caption(members)}
    if "latent.npy" in members:
        sample["latent"] = _array(members["latent.npy"])
    else:
        ext = next((e for e in IMAGE_EXTENSIONS if e in members), None)
        if ext is None:
            raise SampleError("missing image")
        sample["image"] = decode_image(members[ext], resolution, channels)
    if "text.npy" in members and "query.npy" in members:
        sample["c"], sample["e"] = _array(members["text.npy"]), _array(members["query.npy"])
    return sample


def _array(data: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise SampleError("bad cached array") from None


FILE_READERS = {"wds": TarShards, "folder": image_folder, "csv": csv_file}  # specs.py's captioned kinds


def file_source(spec: DataSpec) -> TarShards | _FileList:
    """The reader of a captioned spec of your own (wds:, folder:, csv:)."""
    if spec.kind not in FILE_READERS:
        raise ValueError(f"{spec} is not a captioned file source; use {forms(CAPTIONED)}")
    return FILE_READERS[spec.kind](spec.target)
