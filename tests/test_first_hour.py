"""What a new user runs into first: argument mistakes refused before the model loads, one bad file in a folder,
the GPU options, and the Python API's easy mistakes (a string prompt, tensors in the wrong range or shape)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch
from PIL import Image

from diffdis import DiffDisPipeline
from diffdis.cli import main


@pytest.fixture()
def saved(small_pipeline, tmp_path):
    small_pipeline.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture()
def no_loading(monkeypatch):
    """Fail the test if the model is loaded: the mistake must be caught first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(DiffDisPipeline, "from_pretrained", refuse)


def test_help_does_not_import_torch():
    code = "import sys, diffdis.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize(
    "command, message",
    [
        ("generate --prompt x --out {tmp}/noext.xyz", "not an image format"),
        ("classify --images {tmp} --labels , ", "at least two labels, all different (none was given)"),
        ("classify --images {tmp} --labels a,b --templates nothing", "each with {}"),
        ("classify --images {tmp}/missing --labels a,b", "does not exist"),
        ("retrieve --images {tmp}", "metadata.jsonl"),
    ],
)
def test_argument_mistakes_are_refused_before_the_model_loads(tmp_path, saved, no_loading, capsys, command, message):
    Image.new("L", (20, 20)).save(tmp_path / "one.png")
    argv = command.format(tmp=tmp_path).split() + ["--model", str(saved)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--num-images 0", "--steps 0", "--num-images x"])
def test_counts_must_be_positive(saved, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--model", str(saved), "--prompt", "x", "--out", "g.png", *option.split()])
    assert exit_.value.code == 2 and option.split()[0] in capsys.readouterr().err


def test_generate_writes_one_file_per_image_into_a_folder(saved, tmp_path):
    out = tmp_path / "dresses"
    assert main(["generate", "--model", str(saved), "--prompt", "a dress", "--num-images", "3", "--steps", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["000.png", "001.png", "002.png", "grid.png"]
    assert Image.open(out / "001.png").size == (16, 16)


def test_one_corrupt_file_is_skipped_and_reported(saved, tmp_path, capsys):
    folder = tmp_path / "images"
    for name in ("dress", "bag"):
        (folder / name).mkdir(parents=True)
        Image.new("L", (28, 28), 90).save(folder / name / "good.png")
    (folder / "bag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "result.json"
    assert main(["classify", "--model", str(saved), "--images", str(folder), "--labels", "dress,bag",
                 "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["images"] == 2 and list(result["unreadable"]) == [str(folder / "bag" / "broken.png")]
    assert "skipped 1 unreadable file" in capsys.readouterr().err
    for good in folder.rglob("good.png"):
        good.write_bytes(b"garbage")
    assert main(["classify", "--model", str(saved), "--images", str(folder), "--labels", "dress,bag"]) == 2
    assert "none of the 3 image files could be read" in capsys.readouterr().err


def test_device_and_dtype(saved, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("L", (28, 28), 90).save(folder / "a.png")
    argv = ["classify", "--model", str(saved), "--images", str(folder), "--labels", "dress,bag", "--device", "cpu"]
    assert main(argv + ["--dtype", "bfloat16"]) == 0
    assert main(argv + ["--dtype", "float16"]) == 2
    assert "float16 inference needs a GPU" in capsys.readouterr().err
    pipe = DiffDisPipeline.from_pretrained(saved, "cpu", "bfloat16")
    with torch.no_grad():
        full = DiffDisPipeline.from_pretrained(saved).encode_image([Image.new("L", (16, 16), 90)])
    half = pipe.encode_image([Image.new("L", (16, 16), 90)])
    assert half.dtype == torch.float32 and torch.nn.functional.cosine_similarity(full, half).item() > 0.98


def test_the_api_refuses_easy_mistakes_with_the_fix(small_pipeline):
    pipe = small_pipeline
    assert len(pipe.generate("a dress", num_inference_steps=2)) == 1  # a string is one prompt
    with pytest.raises(ValueError, match="at least 1"):
        pipe.generate(["a dress"], num_inference_steps=0)
    with pytest.raises(ValueError, match="no images"):
        pipe.classify([], ["dress", "bag"])
    with pytest.raises(ValueError, match="wrap one image in a list"):
        pipe.classify(Image.new("L", (16, 16)), ["dress", "bag"])
    with pytest.raises(ValueError, match=r"x / 127.5 - 1"):
        pipe.classify(torch.full((2, 1, 16, 16), 200.0), ["dress", "bag"])
    with pytest.raises(ValueError, match=r"shape \(N, 1, 16, 16\)"):
        pipe.classify(torch.zeros(2, 3, 32, 32), ["dress", "bag"])
    with pytest.raises(ValueError, match="non-empty names"):
        pipe.classify(torch.zeros(2, 1, 16, 16), "dress")
    pixels = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    as_float = pixels.float() / 127.5 - 1
    assert torch.equal(pipe.encode_image(pixels), pipe.encode_image(as_float))  # uint8 0-255 is unambiguous
    with pytest.raises(ValueError, match="at least two labels.*only 'dress'"):  # the CLI's and the app's rule too
        pipe.classify(as_float, ["dress", "dress"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe.classify(as_float, ["dress", "bag", "dress"])
    assert len(caught) == 1 and "more than once" in str(caught[0].message)


def test_retrieval_relevance_as_lists_of_matching_texts(small_pipeline):
    images = torch.zeros(3, 1, 16, 16)
    texts = ["a dress", "a bag", "a coat", "a dress."]
    as_lists = small_pipeline.retrieve(images, texts, relevance=[[0, 3], [1], [2]])
    matrix = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.bool)
    assert as_lists.metrics == small_pipeline.retrieve(images, texts, relevance=matrix).metrics
    with pytest.raises(ValueError, match="pairs image i with text i"):
        small_pipeline.retrieve(images, texts)
    with pytest.raises(ValueError, match="outside 0-3"):
        small_pipeline.retrieve(images, texts, relevance=[[0], [9], [2]])


def test_prompts_unlike_the_training_captions_are_flagged(small_pipeline, tmp_path, capsys):
    from diffdis.data.vocabulary import vocabulary_record

    assert small_pipeline.unfamiliar(["a red car"]) == []  # nothing known about its training: no opinion
    small_pipeline.vocabulary = vocabulary_record("varied")
    small_pipeline.save_pretrained(tmp_path / "model")
    pipe = DiffDisPipeline.from_pretrained(tmp_path / "model")
    flagged = pipe.unfamiliar(["a red car", "a photo of a dress.", "trouser", "a dog on the beach"])
    assert [text for text, _, _ in flagged] == ["a red car", "a dog on the beach"]
    argv = ["generate", "--model", str(tmp_path / "model"), "--prompt", "a red car", "--num-images", "1"]
    assert main([*argv, "--steps", "1", "--out", str(tmp_path / "car.png")]) == 0
    assert "'a red car' is unlike anything the model was trained on" in capsys.readouterr().err
