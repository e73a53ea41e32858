#!/usr/bin/env bash
# Create or refresh .venv with diffdis, its web app and its test tools, and make the built-in data available:
# Fashion-MNIST from Debian, the emoji art from the npm registry (pinned versions, hash-checked, into
# ~/.cache/diffdis/emoji or $DIFFDIS_CACHE; about 190 MB, once).
#   - torch: a torch already in .venv is kept (bring your own CUDA build: `.venv/bin/pip install torch` first);
#     otherwise the CPU build pinned below is installed ($DIFFDIS_TORCH overrides the requirement).
#   - data: Debian's dataset-fashion-mnist is installed when missing and apt-get can run as root; otherwise
#     the command to run is printed (or point train.data_dir / --data-dir at your own IDX files).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_REQUIREMENT=${DIFFDIS_TORCH:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install --quiet "$TORCH_REQUIREMENT"
fi
stamp=.venv/.diffdis-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install --quiet -e ".[test]"
    touch "$stamp"
fi
# The tests build a tiny Stable Diffusion folder with the real CLIP tokenizer, whose BPE merges ship in the
# open_clip_torch wheel. Only that data file is read, so the package goes in without its dependencies.
if ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('open_clip') is None)"; then
    .venv/bin/pip install --quiet --no-deps "open_clip_torch==3.3.0"
fi

# WordNet (wordnet-base) is read only by the test that checks the class-name snapshot (data/vocabulary.py);
# Chromium only by the web app's browser test (Playwright drives the system's browser; it downloads none).
DATA=/usr/share/datasets/fashion-mnist
missing=()
[ -f "$DATA/t10k-labels-idx1-ubyte.gz" ] || [ -f "$DATA/t10k-labels-idx1-ubyte" ] || missing+=(dataset-fashion-mnist)
[ -f /usr/share/wordnet/data.noun ] || missing+=(wordnet-base)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages: run 'sudo apt-get install ${missing[*]}'." >&2
        echo "Fashion-MNIST can instead come from your own IDX folder: --set train.data_dir=DIR (train) and" >&2
        echo "--data-dir DIR (evaluation)." >&2
    fi
fi
if command -v npm >/dev/null; then
    .venv/bin/diffdis emoji install
else
    echo "npm is missing: the emoji data set needs it once ('sudo apt-get install npm', then 'diffdis emoji install')." >&2
fi
