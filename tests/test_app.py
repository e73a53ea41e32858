"""The web app: its input checks, its model work, every API endpoint through gradio_client (good and bad input,
the server serving on after each), a bounded load test and cache clean-up. The real-browser
test is in test_app_browser.py."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from helpers import free_port, write_png
from PIL import Image, ImageFile

from diffdis import DiffDisPipeline
from diffdis.app import inputs
from diffdis.app.inputs import InputError, Limits
from diffdis.app.service import AppService

pytest.importorskip("gradio", reason="the web app needs the app extra (pip install 'diffdis[app]')")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_config):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("app") / "model"
    DiffDisPipeline.from_config(small_config).save_pretrained(folder)
    write_png(folder / "samples.png", (64, 32))  # a sample grid for the Model tab
    return folder


@pytest.fixture(scope="module")
def service(model_dir, idx_dir):
    service = AppService(DiffDisPipeline.from_pretrained(model_dir), model_dir, Limits(queue=2), data_dir=idx_dir)
    yield service
    service.close()


# ------------------------------------------------------------------------------------------- inputs
def test_a_decompression_bomb_is_refused_from_its_header_before_any_decode(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 MP of zeros: a few kB on disk
    assert bomb.stat().st_size < 100_000

    def decode(self):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    with pytest.raises(InputError, match="12000x12000 pixels.*up to 25 MP"):
        inputs.open_image(bomb, Limits())
    huge = tmp_path / "huge.png"
    Image.new("1", (20_000, 20_000)).save(huge)  # 400 MP: PIL itself refuses to open it
    with pytest.raises(InputError, match="far more pixels than the 25 MP"):
        inputs.open_image(huge, Limits())


def test_uploads_too_large_or_not_images_are_refused_with_the_fix(tmp_path):
    big = write_png(tmp_path / "big.png", (600, 600))
    with pytest.raises(InputError, match="MB; the app reads images up to"):
        inputs.open_image(big, Limits(upload_bytes=1000))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InputError, match="notes.png is not an image this app can read; use PNG, JPEG or WebP"):
        inputs.open_image(text, Limits())
    with pytest.raises(InputError, match="no image was given"):
        inputs.open_images([], Limits())
    with pytest.raises(InputError, match="3 images were given; the app classifies up to 2"):
        inputs.open_images([big] * 3, Limits(images=2))
    assert inputs.open_images([write_png(tmp_path / "ok.png")], Limits())[0].size == (28, 28)


def test_labels_prompts_and_numbers_are_checked():
    assert inputs.labels("dress, coat\nbag,, dress", Limits()) == ["dress", "coat", "bag"]
    for text, message in (("", "at least two labels.*none"), ("dress", "only 'dress'"), ("a,a", "only 'a'")):
        with pytest.raises(InputError, match=message):
            inputs.labels(text, Limits())
    with pytest.raises(InputError, match="4 labels were given; the app takes up to 3"):
        inputs.labels("a,b,c,d", Limits(labels=3))
    assert inputs.captions("a dress, long.\na coat.", Limits()) == ["a dress, long.", "a coat."]
    with pytest.raises(InputError, match="prompt is empty"):
        inputs.prompt("   ", Limits())
    with pytest.raises(InputError, match="301 characters"):
        inputs.prompt("x" * 301, Limits())
    assert inputs.whole(4.0, "images", 1, 8) == 4
    for bad in (0, 9, 2.5, "x", None):
        with pytest.raises(InputError, match="images must be a whole number from 1 to 8"):
            inputs.whole(bad, "images", 1, 8)


# ------------------------------------------------------------------------------------------ service
def test_service_generates_with_the_models_own_scores_and_classifies_with_probabilities(service):
    steps = []
    images = service.generate("a photo of a dress.", 2, 3, 3.0, seed=5, progress=lambda d, t: steps.append((d, t)))
    assert [im.image.size for im in images] == [(16, 16)] * 2
    assert all(-1 <= float(im.caption) <= 1 for im in images)  # the cosine of the image's query with the prompt
    assert steps == [(1, 3), (2, 3), (3, 3)]
    expected = service.pipe.generate(["a photo of a dress."] * 2, num_inference_steps=3, seed=5)
    assert np.array_equal(np.asarray(images[1].image), np.asarray(expected[1]))  # seed + position, as the API
    best = service.generate("a photo of a dress.", 1, 3, 3.0, seed=5, candidates=3)
    assert "best of 3" in best[0].caption

    per_image = service.classify([im.image for im in images], ["dress", "coat", "bag"])
    for probabilities in per_image:
        assert sorted(probabilities) == ["bag", "coat", "dress"]
        assert abs(sum(probabilities.values()) - 1) < 1e-5
        assert list(probabilities.values()) == sorted(probabilities.values(), reverse=True)


def test_service_searches_its_gallery_and_ranks_captions(service):
    assert len(service.gallery.images) == 40  # the stand-in test split is smaller than the gallery size
    found = service.search_gallery("a photo of a bag.", 5)
    cosines = [c for _, _, c in found]
    assert len(found) == 5 and cosines == sorted(cosines, reverse=True)
    direct = service.pipe.encode_image(service.gallery.images) @ service.pipe.encode_text(["a photo of a bag."])[0]
    assert torch.allclose(torch.tensor(cosines), direct.sort(descending=True).values[:5], atol=1e-5)
    ranked = service.rank_captions(service.gallery.images[0], ["a dress.", "a bag.", "a coat."])
    assert abs(sum(ranked.values()) - 1) < 1e-5 and len(ranked) == 3
    scored, mean = service.round_trip("a photo of a bag.", ["bag", "dress"], 2, seed=0)
    assert len(scored) == 2 and abs(sum(mean.values()) - 1) < 1e-5


@pytest.mark.slow
def test_a_folder_gallery_skips_unreadable_files(model_dir, tmp_path, idx_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_png(folder / "a.png")
    write_png(folder / "b.png", mode="RGB")
    (folder / "broken.png").write_bytes(b"no")
    service = AppService(DiffDisPipeline.from_pretrained(model_dir), model_dir, gallery=folder, data_dir=idx_dir)
    try:
        assert service.gallery.names == ["a.png", "b.png"]
        assert len(service.examples) == 10  # one stand-in test image per class
    finally:
        service.close()
    assert not service.examples_dir.exists()


# ------------------------------------------------------------------------------------------ the server
@pytest.fixture(scope="module")
def server(model_dir, idx_dir, tmp_path_factory):
    from diffdis.app.ui import serve

    port = free_port()
    limits = Limits(queue=2, upload_bytes=200_000)
    app, service = serve(model_dir, port=port, limits=limits, block=False, data_dir=idx_dir)
    yield f"http://127.0.0.1:{port}/", service
    app.close()
    service.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


@pytest.mark.slow
def test_every_endpoint_answers_through_gradio_client(client, server):
    from gradio_client import handle_file

    assert set(client.view_api(return_format="dict")["named_endpoints"]) >= {
        "/generate",
        "/classify",
        "/retrieve",
        "/rank_captions",
        "/round_trip",
    }
    gallery, seed = client.predict("a photo of a dress.", 2, 3, 3.0, 7, False, 2, api_name="/generate")
    assert seed == 7 and len(gallery) == 2 and "best of 2" in gallery[0]["caption"]
    assert Image.open(gallery[0]["image"]).format == "PNG"
    _, seed = client.predict("a photo of a dress.", 1, 2, 3.0, 7, True, 1, api_name="/generate")
    assert 0 <= seed < 2**31

    example = handle_file(str(server[1].examples[0]))
    label, images = client.predict([example, example], "dress, coat\nbag", 2, 2, "ddim", api_name="/classify")
    assert len(label["confidences"]) == 2 and len(images) == 2  # top 2 of 3 labels; every image captioned
    assert label["label"] == label["confidences"][0]["label"]

    matches = client.predict("a photo of a bag.", 3, 1, "x0", api_name="/retrieve")
    assert len(matches) == 3 and all(": test image, a " in m["caption"] for m in matches)
    ranked = client.predict(example, "a dress.\na bag.", api_name="/rank_captions")
    assert {c["label"] for c in ranked["confidences"]} == {"a dress.", "a bag."}
    images, mean = client.predict("a photo of a bag.", "bag, dress", 2, 0, api_name="/round_trip")
    assert len(images) == 2 and abs(sum(c["confidence"] for c in mean["confidences"]) - 1) < 1e-4


@pytest.mark.slow
def test_bad_input_gets_a_clear_error_and_the_server_serves_on(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)
    text = tmp_path / "text.png"
    text.write_text("not an image")
    large = write_png(tmp_path / "large.png", (700, 700))  # about 490 kB: over the server's 200 kB limit
    ok = handle_file(str(write_png(tmp_path / "ok.png")))
    cases = [
        (("", 1, 2, 3.0, 0, False, 1), "/generate", "prompt is empty"),
        (
            ("a dress.", 100, 2, 3.0, 0, False, 1),
            "/generate",
            "greater than maximum value 8",
        ),  # Gradio checks slider ranges
        (([handle_file(str(bomb))], "dress, coat", 1, 1, "ddim"), "/classify", "12000x12000 pixels"),
        (([handle_file(str(text))], "dress, coat", 1, 1, "ddim"), "/classify", "is not an image"),
        (([], "dress, coat", 1, 1, "ddim"), "/classify", "no image was given"),
        (([ok], "", 1, 1, "ddim"), "/classify", "at least two labels"),
        (([ok], "dress", 1, 1, "ddim"), "/classify", "only 'dress'"),
        (([ok], ",".join(f"label {i}" for i in range(101)), 1, 1, "ddim"), "/classify", "101 labels"),
        (([ok] * 17, "dress, coat", 1, 1, "ddim"), "/classify", "17 images"),
        ((ok, "one caption"), "/rank_captions", "at least two captions"),
        (("", 3, 1, "ddim"), "/retrieve", "prompt is empty"),
    ]
    for args, endpoint, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name=endpoint)
        label, _ = client.predict([ok], "dress, coat", 1, 1, "ddim", api_name="/classify")  # still serving
        assert label["label"] in ("dress", "coat")
    with pytest.raises(Exception, match="(?i)size|large|413"):  # refused at upload, before it is stored
        client.predict([handle_file(str(large))], "dress, coat", 1, 1, "ddim", api_name="/classify")
    assert client.predict([ok], "dress, coat", 1, 1, "ddim", api_name="/classify")[0]["label"]


@pytest.mark.slow
def test_a_full_queue_answers_at_once_and_nothing_hangs(server):
    from gradio_client import Client

    clients = [Client(server[0], verbose=False) for _ in range(8)]
    start, outcomes = threading.Barrier(len(clients)), []

    def request(c):
        start.wait()
        try:
            c.predict("a photo of a coat.", 4, 60, 3.0, 0, False, 1, api_name="/generate")
            outcomes.append("answered")
        except Exception as error:  # gradio_client's QueueError, or anything else (then the test fails)
            outcomes.append("queue full" if "queue is full" in str(error).lower() else f"error: {error}")

    threads = [threading.Thread(target=request, args=(c,), daemon=True) for c in clients]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request hung"
    assert sorted(set(outcomes)) == ["answered", "queue full"], outcomes  # 1 running + 2 waiting; the rest refused
    assert time.perf_counter() - began < 120
    assert clients[0].predict("a photo of a coat.", 1, 2, 3.0, 0, False, 1, api_name="/generate")[1] == 0


@pytest.mark.slow
def test_uploads_and_outputs_are_deleted_from_the_cache(model_dir, idx_dir, tmp_path, monkeypatch):
    from gradio_client import Client

    from diffdis.app.ui import serve

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    port = free_port()
    app, service = serve(model_dir, port=port, block=False, data_dir=idx_dir, cache_cleanup=(1, 1))
    files = lambda: {p for p in (tmp_path / "cache").rglob("*") if p.is_file()}  # noqa: E731
    try:
        page = files()  # what the page itself shows (the sample grid) stays
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            "a photo of a dress.", 2, 2, 3.0, 0, False, 1, api_name="/generate"
        )
        assert files() - page, "the outputs were not cached where expected"
        deadline = time.time() + 20
        while files() - page and time.time() < deadline:
            time.sleep(0.5)
        assert not files() - page
    finally:
        app.close()
        service.close()


def test_the_model_tab_shows_the_card_and_the_sample_grid(service, model_dir):
    files = service.model_files()
    assert files["samples"] == str(model_dir / "samples.png") and files["config"]["model"]["variant"] == "diffdis"
    assert service.card().startswith("---\nlibrary_name: diffdis")


def test_the_app_command_refuses_a_missing_model_or_gallery_before_loading(tmp_path, model_dir, capsys):
    from diffdis.cli import main

    assert main(["app", "--model", str(tmp_path / "nothing")]) == 2
    assert "is not a saved DiffDis pipeline" in capsys.readouterr().err
    assert main(["app", "--model", str(model_dir), "--gallery", str(tmp_path / "none")]) == 2
    assert "--gallery" in capsys.readouterr().err
