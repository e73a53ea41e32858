"""The web app as a user meets it: seconds from `diffdis app` to the page being served, the latency of
generating 4 images at 25 steps and of classifying one image against 10 labels (through the API, as the page
calls it; median of 5 alternating rounds after one warm-up), and a screenshot of the page in Chromium.

    python -m benchmarks.app_latency [--model runs/demo-fashion/model] [--screenshot docs/app.png]

Absolute times on this machine, not ratios: they say what waiting for the app feels like here."""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

from diffdis.data.datasets import load_fashion_mnist
from diffdis.provenance import environment
from diffdis.utils.results import write_json
from diffdis.utils.timing import alternating_times

from .common import OUT, print_table

PROMPT = "a photo of a sneaker."
LABELS = "t-shirt, pair of trousers, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot"


def test_image(path: Path) -> Path:
    """A Fashion-MNIST test image of a sneaker, as a user would upload it."""
    test = load_fashion_mnist("test", 28)
    Image.fromarray(test.images[int((test.labels == 7).nonzero()[0, 0]), 0].numpy()).save(path)
    return path


def wait_until_served(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"diffdis app exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} was not served within {timeout:.0f} s")


def screenshot(url: str, path: Path, image: str) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 720})
        page.goto(url, wait_until="networkidle")
        page.get_by_role("tab", name="Classify").click()
        page.locator("#classify-files input[type=file]").set_input_files(image)
        page.locator("#classify-button").click()
        page.wait_for_function("(document.querySelector('#classify-result')?.innerText.match(/%/g) || []).length > 2")
        page.get_by_role("tab", name="Generate").click()
        page.locator("#generate-prompt textarea").fill("a photo of a sneaker.")
        page.locator("#generate-button").click()
        page.wait_for_function("document.querySelectorAll('#generate-gallery img').length >= 4", timeout=120_000)
        page.screenshot(path=str(path))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/demo-fashion/model")
    parser.add_argument("--screenshot", default="docs/app.png", help="where the page's screenshot goes ('' = none)")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    command = [
        str(Path(sys.executable).with_name("diffdis")),
        "app",
        "--model",
        args.model,
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_served(url, process)
        served_s = time.perf_counter() - start
        from gradio_client import Client, handle_file

        client = Client(url, verbose=False)
        example = str(test_image(Path(tempfile.mkdtemp()) / "sneaker.png"))
        image = handle_file(example)
        seconds = alternating_times(
            {
                "generate": lambda: client.predict(
                    "a photo of a sneaker.", 4, 25, 3.0, 0, False, 1, api_name="/generate"
                ),
                "classify": lambda: client.predict([image], LABELS, 5, 2, "ddim", api_name="/classify"),
            }
        )
        generate, classify = seconds["generate"], seconds["classify"]
        if args.screenshot:
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            screenshot(url, Path(args.screenshot), example)
    finally:
        process.terminate()
        process.wait(timeout=30)
    result = {
        "model": args.model,
        "device": "cpu",
        "dtype": "float32",
        "served_s": served_s,
        "generate_4_images_25_steps_s": generate,
        "classify_1_image_10_labels_s": classify,
        "how": "gradio_client on loopback; generation: DDIM, guidance 3, seed 0; classification: 2 DDIM query "
        "steps, a Fashion-MNIST test sneaker; median of 5 alternating rounds after one warm-up",
        "screenshot": args.screenshot or None,
        "environment": environment(),
    }
    write_json(OUT / "app.json", result)
    print_table(
        "the web app on this machine",
        ["measure", "seconds (median, min-max)"],
        [
            ["`diffdis app` to page served", f"{served_s:.1f}"],
            ["generate 4 images, 25 steps", f"{generate['median']:.2f} ({generate['min']:.2f}-{generate['max']:.2f})"],
            ["classify 1 image, 10 labels", f"{classify['median']:.3f} ({classify['min']:.3f}-{classify['max']:.3f})"],
        ],
    )


if __name__ == "__main__":
    main()
