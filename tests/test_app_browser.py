"""The web app in a real browser: Playwright drives the system's Chromium (no browser download) through a
generation and a classification, reads the probabilities back from the page and saves a screenshot. It also
checks that the page asks nothing of any host but the app's own (the app runs offline)."""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlparse

import pytest
import torch
from helpers import free_port, write_png

from diffdis import DiffDisPipeline

pytest.importorskip("gradio", reason="the web app needs the app extra (pip install 'diffdis[app]')")
playwright = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the test extra)")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [
    pytest.mark.slow,  # a server and a browser: `make test` runs it, `make test-fast` does not
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium on this machine: scripts/setup.sh installs Debian's chromium (as root)"
    ),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, small_config, idx_dir):
    from diffdis.app.ui import serve

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("browser") / "model"
    DiffDisPipeline.from_config(small_config).save_pretrained(folder)
    port = free_port()
    app, service = serve(folder, port=port, block=False, data_dir=idx_dir)
    yield f"http://127.0.0.1:{port}/"
    app.close()
    service.close()


def test_generate_then_classify_in_chromium(app_url, tmp_path):
    hosts, text = _generate_then_classify(app_url, tmp_path, "a photo of a dress.", write_png(tmp_path / "upload.png"))
    shown = {label: float(value) for label, value in re.findall(r"(dress|coat|bag)\s+([\d.]+)%", text)}
    assert set(shown) == {"dress", "coat", "bag"}, text
    assert abs(sum(shown.values()) - 100) < 1.5  # rounded percentages of one softmax
    assert (tmp_path / "app.png").stat().st_size > 10_000
    assert hosts == {"127.0.0.1"}, f"the page asked other hosts: {hosts - {'127.0.0.1'}}"


@pytest.fixture(scope="module")
def released_url():
    """The app over the released emoji model, by name, as `make app` serves it without a demo model."""
    from diffdis.app.ui import serve

    port = free_port()
    app, service = serve("emoji-16", port=port, block=False)
    yield f"http://127.0.0.1:{port}/", service
    app.close()
    service.close()


def test_the_released_model_draws_its_opening_prompt_and_names_an_unseen_drawing_in_chromium(released_url, tmp_path):
    url, service = released_url
    opening = service.showcase_prompts()[0]
    assert opening == f"an emoji of {service.release['draws_well'][0]}."  # a concept its samples were judged to show
    # a drawing of a concept no training caption named, against names typed by hand (the true one among them)
    unseen, true_name = service.examples[0], service.pipe.vocabulary["held_out_test"][0]  # the Classify tab's first
    labels = [true_name, "red apple", "rocket"]
    hosts, text = _generate_then_classify(url, tmp_path, None, unseen, ", ".join(labels), expect_prompt=opening)
    shown = dict(re.findall(r"(" + "|".join(map(re.escape, labels)) + r")\s+([\d.]+)%", text))
    assert set(shown) == set(labels), text
    assert abs(sum(map(float, shown.values())) - 100) < 1.5
    assert hosts == {"127.0.0.1"}


def _generate_then_classify(url, tmp_path, prompt, upload, labels="dress, coat, bag", expect_prompt=None):
    """Generate (typing `prompt`, or keeping the opening one), then classify `upload` against `labels`; returns
    the hosts the page asked and the text of the result. Saves tmp_path/app.png."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        hosts = set()
        page.on("request", lambda request: hosts.add(urlparse(request.url).hostname))
        page.goto(url, wait_until="networkidle")

        box = page.locator("#generate-prompt textarea")
        if expect_prompt is not None:
            assert box.input_value() == expect_prompt
        if prompt is not None:
            box.fill(prompt)
        page.locator("#generate-button").click()
        images = page.locator("#generate-gallery img")
        images.first.wait_for(timeout=60_000)
        page.wait_for_function("document.querySelectorAll('#generate-gallery img').length >= 4", timeout=60_000)
        assert images.count() >= 4  # the default: four images

        page.get_by_role("tab", name="Classify").click()
        page.locator("#classify-files input[type=file]").set_input_files(str(upload))
        page.locator("#classify-labels textarea").fill(labels)
        page.locator("#classify-button").click()
        result = page.locator("#classify-result")
        page.wait_for_function(
            "(document.querySelector('#classify-result')?.innerText.match(/%/g) || []).length >= 3", timeout=60_000
        )
        text = result.inner_text()
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        browser.close()
    return hosts, text
