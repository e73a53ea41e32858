"""The web app under use: a few hundred mixed requests against one model, as the page sends them (loopback
only, a fixed count): generate from distinct prompts, classify against distinct typed label lists and against
every concept name, search the gallery, rank captions, and bad uploads that must be refused. The app's resident
memory and each kind's p50/p95 latency are recorded over the first and the last quarter of the requests:
memory must not grow with the number of distinct label lists or prompts (the caches are bounded).

    python -m benchmarks.app_soak [--model runs/demo-emoji/model] [--requests 300]

Writes runs/bench/app_soak.json. Absolute times on this machine."""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from diffdis.provenance import environment
from diffdis.utils.results import write_json

from .app_latency import wait_until_served
from .common import OUT, print_table

KINDS = ("generate", "classify-typed", "classify-all", "retrieve", "rank", "bad-upload")
WEIGHTS = (3, 6, 1, 3, 2, 1)


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentiles(times: list[float]) -> dict:
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95)), "n": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/demo-emoji/model")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import json

    vocabulary = json.loads((Path(args.model) / "vocabulary.json").read_text())
    names = sorted(
        {*vocabulary["classes"], *vocabulary.get("held_out_test", []), *vocabulary.get("held_out_validation", [])}
    )
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="diffdis-soak-"))
    picture = folder / "drawing.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(picture)
    broken = folder / "not-an-image.png"
    broken.write_text("this is text, not a PNG")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    command = [str(Path(sys.executable).with_name("diffdis")), "app", "--model", args.model, "--port", str(port)]
    process = subprocess.Popen([*command, "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_served(url, process)
        from gradio_client import Client, handle_file

        client = Client(url, verbose=False)
        image, bad = handle_file(str(picture)), handle_file(str(broken))

        def send(kind: str, k: int) -> None:
            if kind == "generate":
                client.predict(f"an emoji of {rng.choice(names)}.", 1, 10, 3.0, k, False, 1, api_name="/generate")
            elif kind == "classify-typed":
                labels = ", ".join(rng.sample(names, rng.randint(3, 20)))
                client.predict([image], labels, 5, 2, "ddim", api_name="/classify")
            elif kind == "classify-all":
                client.predict([image], ", ".join(names), 5, 2, "ddim", api_name="/classify")
            elif kind == "retrieve":
                client.predict(f"a picture of {rng.choice(names)}.", 8, 2, "ddim", api_name="/retrieve")
            elif kind == "rank":
                client.predict(image, "\n".join(rng.sample(names, 5)), api_name="/rank_captions")
            else:
                try:
                    client.predict([bad], "cat face, dog face", 5, 2, "ddim", api_name="/classify")
                except Exception:  # noqa: BLE001 (the refusal is the expected answer)
                    return
                raise RuntimeError("a file that is not an image was classified instead of refused")

        for kind in KINDS:  # warm-up: every cache the app keeps is filled once before the first measurement
            send(kind, 0)
        start_mb = resident_mb(process.pid)
        plan = rng.choices(KINDS, WEIGHTS, k=args.requests)
        times: list[tuple[str, float]] = []
        for k, kind in enumerate(plan):
            began = time.perf_counter()
            send(kind, k)
            times.append((kind, time.perf_counter() - began))
        end_mb = resident_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    quarter = len(times) // 4
    first, last = times[:quarter], times[-quarter:]
    result = {
        "model": args.model,
        "requests": len(times),
        "mix": {kind: plan.count(kind) for kind in KINDS},
        "distinct_label_lists": plan.count("classify-typed"),
        "resident_mb": {"after_warm_up": start_mb, "end": end_mb, "growth": end_mb - start_mb},
        "latency_s": {
            kind: {
                "first_quarter": percentiles([t for k, t in first if k == kind] or [float("nan")]),
                "last_quarter": percentiles([t for k, t in last if k == kind] or [float("nan")]),
            }
            for kind in KINDS
        },
        "how": "gradio_client on loopback, one request at a time; generate: 1 image, 10 DDIM steps, guidance 3; "
        "classify and retrieve: 2 DDIM query steps; typed label lists of 3-20 random concept names; "
        f"classify-all: every one of {len(names)} concept names; bad upload: a text file named .png",
        "seed": args.seed,
        "environment": environment(),
    }
    write_json(OUT / "app_soak.json", result)
    rows = [
        [
            kind,
            f"{r['first_quarter']['p50']:.2f} / {r['first_quarter']['p95']:.2f}",
            f"{r['last_quarter']['p50']:.2f} / {r['last_quarter']['p95']:.2f}",
        ]
        for kind, r in result["latency_s"].items()
    ]
    rows.append(["resident MB", f"{start_mb:.0f}", f"{end_mb:.0f}"])
    print_table(
        f"the app under {len(times)} mixed requests", ["request", "first quarter p50/p95 s", "last quarter"], rows
    )


if __name__ == "__main__":
    main()
