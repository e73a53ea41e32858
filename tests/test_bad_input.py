"""Bad data and bad input: every kind of broken sample is converted or skipped and counted, random bytes never
crash the loader, and bad configurations and command lines are refused before any compute, naming the fix."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib

import numpy as np
import pytest
from helpers import SMALL
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from diffdis import preset
from diffdis.cli import main
from diffdis.config import Config, ConfigError
from diffdis.data.files import SampleError, decode_caption, decode_image
from diffdis.data.stream import FileBatches


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@given(st.binary(max_size=4096))
@settings(max_examples=300, deadline=None)
def test_random_bytes_as_an_image_decode_or_raise_sample_error(data):
    try:
        array = decode_image(data, 8, 3)
    except SampleError as error:
        assert error.reason in ("empty image", "undecodable image", "image too large")
    else:
        assert array.shape == (3, 8, 8) and array.dtype == np.uint8


@given(st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_random_bytes_as_a_caption_decode_or_raise_sample_error(data):
    try:
        caption = decode_caption({"txt": data})
    except SampleError as error:
        assert error.reason == "empty caption"
    else:
        assert caption and caption == " ".join(caption.split()) and "\x00" not in caption


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_unicode_caption_survives_json_and_txt(text):
    expected = " ".join(text.replace("\x00", " ").split())
    for members in ({"txt": text.encode("utf-8")}, {"json": json.dumps({"caption": text}).encode()}):
        try:
            assert decode_caption(members) == expected
        except SampleError as error:
            assert not expected and error.reason in ("empty caption", "missing caption")


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("1", "PNG"),
        ("L", "PNG"),
        ("LA", "PNG"),
        ("P", "PNG"),
        ("RGB", "JPEG"),
        ("RGBA", "PNG"),
        ("CMYK", "JPEG"),
        ("CMYK", "TIFF"),
        ("I;16", "PNG"),
        ("I", "TIFF"),
        ("F", "TIFF"),
        ("YCbCr", "JPEG"),
        ("RGB", "WEBP"),
        ("RGB", "BMP"),
        ("P", "GIF"),
    ],
)
def test_every_mode_and_format_decodes(mode, fmt):
    image = Image.new(mode, (37, 23))
    for channels in (1, 3):
        assert decode_image(_encode(image, fmt), 16, channels).shape == (channels, 16, 16)
    assert decode_image(_encode(Image.new(mode, (1, 1)), fmt), 16, 3).shape == (3, 16, 16)  # one pixel


def test_a_decompression_bomb_is_skipped():
    png = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    header = struct.pack(">II", 60_000, 60_000) + png[24:29]  # IHDR claims 60,000 x 60,000 pixels
    png[16:29] = header
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(header)))
    with pytest.raises(SampleError, match="image too large"):
        decode_image(bytes(png), 16, 3)


def test_long_and_non_latin_captions_are_truncated_by_the_tokenizer(text_encoder):
    captions = ["猫が窓辺に座っている " * 500, "a " * 10_000, "Ωμέγα " * 300, "🙂" * 2000]
    c, e = text_encoder(captions)
    assert c.shape == (4, text_encoder.max_length, 384) and e.isfinite().all()


def test_a_loader_fed_random_bytes_never_crashes(tmp_path):
    rng = np.random.default_rng(0)
    good = _encode(Image.new("RGB", (9, 9), (200, 10, 10)), "PNG")
    shard = tmp_path / "fuzz.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(400):
            members = {"png": good, "txt": b"a red square"} if i % 3 == 0 else {}
            for _ in range(int(rng.integers(0, 4))):
                ext = str(rng.choice(["png", "jpg", "txt", "json", "webp", "npy", "latent.npy", "x"]))
                members[ext] = rng.bytes(int(rng.integers(0, 300)))
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{i:05d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    config = preset(
        "tiny",
        [
            f"train.data=wds:{shard}",
            "train.batch_size=8",
            "train.num_workers=0",
            "train.shuffle_buffer=16",
            "model.image_channels=3",
        ],
    )
    batches = FileBatches(config, 0, 1)
    steps = iter(batches)
    seen = 0
    for _ in range(30):
        try:
            seen += len(next(steps)[0]["captions"])
        except ValueError as error:  # a batch mixing cached and raw samples is refused, never garbage
            assert "precomputed encodings" in str(error)
            steps = iter(batches)
    assert seen and sum(batches.skipped().values()) > 0


def test_a_source_with_no_usable_sample_is_refused_not_looped_on(tmp_path):
    shard = tmp_path / "bad.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(50):
            info = tarfile.TarInfo(f"{i:05d}.png")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
    config = preset("tiny", [f"train.data=wds:{shard}", "train.batch_size=4", "train.num_workers=0"])
    with pytest.raises(ValueError, match="samples in a row could not be used"):
        next(iter(FileBatches(config, 0, 1)))


# ------------------------------------------------------------------------------------ configuration and CLI
def _train(tmp_path, *args):
    return main(["train", "--out", str(tmp_path / "run"), "--no-progress", *args])


def test_unknown_key_is_refused_naming_the_valid_keys(tmp_path, capsys):
    assert _train(tmp_path, "--set", "train.learning_rate=1") == 2
    assert "valid train keys" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_wrong_type_in_a_config_file_is_refused():
    data = Config().to_dict()
    data["train"]["batch_size"] = "64"
    with pytest.raises(ConfigError, match="train.batch_size must be of type int"):
        Config.from_dict(data)


def test_incompatible_sizes_are_refused():
    with pytest.raises(ConfigError, match="not divisible"):
        preset("tiny", ["model.transformer_width=100", "model.transformer_head_dim=32"])
    with pytest.raises(ConfigError, match="gradient_accumulation=3 must be a positive divisor"):
        preset("tiny", ["train.gradient_accumulation=3"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.data_dir={missing}", "not found in"),
        ("train.data=wds:{missing}/{{00000..00003}}.tar", "4 of 4 shards do not exist"),
        ("train.data=folder:{missing}", "metadata.jsonl does not exist"),
        ("train.data=csv:{missing}/pairs.csv", "does not exist"),
        ("train.init_from={missing}", "does not exist"),
        ("train.val_data=classes:{missing}", "does not exist"),
    ],
)
def test_missing_paths_are_refused_before_any_compute(tmp_path, capsys, setting, message):
    overrides = [*SMALL, setting.format(missing=tmp_path / "nowhere")]
    assert _train(tmp_path, *[a for o in overrides for a in ("--set", o)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing was written: refused before the run started


def test_a_model_folder_from_another_version_is_refused(tmp_path, small_pipeline):
    small_pipeline.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "diffdis_config.json").read_text())
    (tmp_path / "model" / "diffdis_config.json").write_text(json.dumps({**config, "version": 99}))
    from diffdis import DiffDisPipeline

    with pytest.raises(ConfigError, match="version 99"):
        DiffDisPipeline.from_pretrained(tmp_path / "model")


def test_a_checkpoint_from_another_version_is_refused(tmp_path, capsys):
    folder = tmp_path / "run" / "checkpoints" / "step_0000002"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"step": 2, "epoch": 0, "offset": 2}))  # format 1
    assert _train(tmp_path, *[a for o in SMALL for a in ("--set", o)], "--max-steps", "3") == 2
    assert "checkpoint format 1" in capsys.readouterr().err
