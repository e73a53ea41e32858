"""`diffdis app`: the web app over a saved pipeline (the `app` extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import Command, check_model, positive, runtime_options


def arguments(a: argparse.ArgumentParser) -> None:
    a.add_argument(
        "--model",
        required=True,
        help="a saved pipeline folder (e.g. runs/demo-fashion/model) or a released model's name (e.g. emoji-16)",
    )
    a.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    a.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    a.add_argument("--gallery", default=None, help="an image folder to search by text (default: Fashion-MNIST test)")
    a.add_argument("--queue", type=positive, default=8, help="requests that may wait for the model (default 8)")
    runtime_options(a)


def run(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    if find_spec("gradio") is None:
        raise ValueError("the web app needs Gradio: pip install 'diffdis[app]'")
    check_model(args.model)
    if args.gallery is not None and not Path(args.gallery).is_dir():
        raise FileNotFoundError(f"--gallery {args.gallery} is not a folder")
    from ..app.inputs import Limits
    from ..app.ui import serve
    from ..factory import default_device

    device = args.device or default_device()
    print(f"diffdis app: serving {args.model} at http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    serve(args.model, args.host, args.port, device, args.dtype, args.gallery, Limits(queue=args.queue))
    return 0


APP = Command("app", "serve the web app (generate, classify, retrieve in the browser; the app extra)", arguments, run)
