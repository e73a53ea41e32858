"""File sources at scale: shards, folders and CSV files; the shuffled, mixed, resumable stream; bad samples."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from diffdis import preset
from diffdis.data.files import SampleError, TarShards, csv_file, decode_sample, image_folder
from diffdis.data.pack import pack_samples, write_shards
from diffdis.data.stream import FileBatches, SlotStream


def _png(value: int, size=(12, 12), mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value).save(buffer, format="PNG")
    return buffer.getvalue()


def _shards(tmp_path, n=64, per_shard=8, name="a"):
    samples = ({"png": _png(i % 256), "txt": f"{name} sample {i}".encode()} for i in range(n))
    shards = write_shards(samples, tmp_path / name, per_shard)
    return f"wds:{tmp_path / name}/{{00000..{len(shards) - 1:05d}}}.tar"


def _config(data, **train):
    overrides = [f"train.data={data}", "train.batch_size=4", "train.shuffle_buffer=8", "train.num_workers=0"]
    return preset("tiny", overrides + [f"train.{k}={v}" for k, v in train.items()])


def _captions(batches, steps):
    it = iter(batches)
    return [c for _ in range(steps) for batch in next(it) for c in batch["captions"]]


def test_pack_writes_readable_shards(tmp_path):
    shards = write_shards(pack_samples("fashion-mnist:test", 16, limit=50), tmp_path, shard_size=20)
    assert [p.name for p in shards] == ["00000.tar", "00001.tar", "00002.tar"]
    source = TarShards(f"{tmp_path}/{{00000..00002}}.tar")
    members = [p.read() for p in source.epoch(0, 0, 1, 0, print)]  # read() is valid until the next pull
    assert len(members) == 50
    decoded = decode_sample(members[0], 16, 1)
    image, text = decoded["image"], decoded["caption"]
    assert image.shape == (1, 16, 16) and image.dtype == np.uint8 and text
    meta = json.loads(members[0]["json"])
    assert meta["class_name"] in text  # the caption names the packed image's class


def test_stream_covers_each_epoch_once_and_slots_are_disjoint(tmp_path):
    config = _config(_shards(tmp_path))
    fresh = [{"emitted": 0, "skipped": {}}]
    seen = []
    for rank in range(2):
        stream = SlotStream(config, 4, rank, 2, [dict(s) for s in fresh], 0)
        batches = stream.slot_batches(0)
        seen.append([c for _ in range(6) for c in next(batches)["captions"]])  # 24 of this slot's 32 samples
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0])) == 24  # no repeats within an epoch


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_continues_the_exact_stream(tmp_path, workers):
    data = f"{_shards(tmp_path, 96, 8, 'a')}@3+{_shards(tmp_path, 40, 8, 'b')}@1"
    config = _config(data, num_workers=workers)
    uninterrupted = _captions(FileBatches(config, 0, 1), 20)
    first = FileBatches(config, 0, 1)
    head = _captions(first, 7)
    state = json.loads(json.dumps(first.state))  # as it travels through a checkpoint
    tail = _captions(FileBatches(config, 0, 1, state), 13)
    assert head + tail == uninterrupted
    assert any(c.startswith("b ") for c in uninterrupted) and any(c.startswith("a ") for c in uninterrupted)


def test_bad_samples_are_skipped_and_counted(tmp_path):
    good = _png(100)
    members = [
        ("0.png", good),
        ("0.txt", b"fine"),
        ("1.png", b"\x89PNG garbage"),
        ("1.txt", b"corrupt image"),
        ("2.png", b""),
        ("2.txt", b"empty image"),
        ("3.png", good),  # no caption at all
        ("4.png", good),
        ("4.txt", "caf\xe9 latin-1".encode("latin-1")),
        ("5.png", good),
        ("5.txt", b"   "),
        ("6.png", _png(7, (1, 1), "RGBA")),
        ("6.json", json.dumps({"caption": "\u732b one pixel"}).encode()),
        ("7.png", good[: len(good) // 2]),
        ("7.txt", b"truncated png"),
    ]
    shard = tmp_path / "bad.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = shard.read_bytes()
    (tmp_path / "cut.tar").write_bytes(raw[:2600])  # a shard cut off inside its third member
    config = _config(f"wds:{shard}+wds:{tmp_path / 'cut.tar'}", batch_size=2, shuffle_buffer=2)
    batches = FileBatches(config, 0, 1)
    captions = _captions(batches, 12)
    assert {"fine", "café latin-1", "\u732b one pixel"} <= set(captions)
    skipped = batches.skipped()
    assert skipped["undecodable image"] >= 2 and skipped["empty image"] >= 1 and skipped["missing caption"] >= 1
    assert skipped["empty caption"] >= 1 and skipped.get("truncated shard", 0) + skipped.get("truncated member", 0) >= 1


def test_folder_and_csv_sources(tmp_path):
    (tmp_path / "img").mkdir()
    for i in range(6):
        (tmp_path / "img" / f"{i}.png").write_bytes(_png(i * 40, (30, 20), "RGB"))
    lines = [json.dumps({"file_name": f"img/{i}.png", "text": f"picture {i}"}) for i in range(6)]
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "pairs.tsv").write_text("filepath\ttitle\n" + "".join(f"img/{i}.png\tpicture {i}\n" for i in range(6)))
    for source in (image_folder(str(tmp_path)), csv_file(str(tmp_path / "pairs.tsv"))):
        decoded = sorted(decode_sample(p.read(), 8, 3)["caption"] for p in source.epoch(0, 0, 1, 0, print))
        assert decoded == [f"picture {i}" for i in range(6)]
    (tmp_path / "broken.csv").write_text("image_url,alt\nx,y\n")
    with pytest.raises(ValueError, match="needs an image column"):
        csv_file(str(tmp_path / "broken.csv"))
    with pytest.raises(SampleError, match="missing image"):
        decode_sample({"txt": b"no image"}, 8, 3)


def test_too_few_shards_for_the_slots_is_refused(tmp_path):
    config = _config(_shards(tmp_path, 16, 8), num_workers=4)
    with pytest.raises(ValueError, match="2 shards for 4 loader slots"):
        FileBatches(config, 0, 1)
