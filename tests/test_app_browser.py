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
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        hosts = set()
        page.on("request", lambda request: hosts.add(urlparse(request.url).hostname))
        page.goto(app_url, wait_until="networkidle")

        page.locator("#generate-prompt textarea").fill("a photo of a dress.")
        page.locator("#generate-button").click()
        images = page.locator("#generate-gallery img")
        images.first.wait_for(timeout=60_000)
        page.wait_for_function("document.querySelectorAll('#generate-gallery img').length >= 4", timeout=60_000)
        assert images.count() >= 4  # the default: four images

        page.get_by_role("tab", name="Classify").click()
        page.locator("#classify-files input[type=file]").set_input_files(str(write_png(tmp_path / "upload.png")))
        page.locator("#classify-labels textarea").fill("dress, coat, bag")
        page.locator("#classify-button").click()
        result = page.locator("#classify-result")
        page.wait_for_function(
            "(document.querySelector('#classify-result')?.innerText.match(/%/g) || []).length >= 3", timeout=60_000
        )
        text = result.inner_text()
        shown = {label: float(value) for label, value in re.findall(r"(dress|coat|bag)\s+([\d.]+)%", text)}
        assert set(shown) == {"dress", "coat", "bag"}, text
        assert abs(sum(shown.values()) - 100) < 1.5  # rounded percentages of one softmax
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        browser.close()
    assert (tmp_path / "app.png").stat().st_size > 10_000
    assert hosts == {"127.0.0.1"}, f"the page asked other hosts: {hosts - {'127.0.0.1'}}"
