#!/usr/bin/env bash
# Settings sweep of the tiny preset on Fashion-MNIST: each setting trains for the same number of steps from the
# same seed, then is scored zero-shot on a fixed 1,000-image test subset (2 text-denoising steps).
# Usage: scripts/sweep.sh [STEPS] [OUT]   (defaults: 250 steps, runs/sweep). Prints one line per setting.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-250}
OUT=${2:-runs/sweep}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
settings=(
    "baseline"
    "model.gamma=0.3"
    "model.gamma=3"
    "train.lam=0.3"
    "train.lam=3"
    "model.text_prediction=epsilon"
)
for setting in "${settings[@]}"; do
    name=${setting//[=.]/_}
    extra=()
    [ "$setting" != baseline ] && extra=(--set "$setting")
    .venv/bin/diffdis train --out "$OUT/$name" --max-steps "$STEPS" --no-progress \
        --set train.validate_every=0 "${extra[@]}" > "$OUT.$name.log" 2>&1
    .venv/bin/diffdis classify --model "$OUT/$name/model" --dataset fashion-mnist --num-images 1000 \
        --json "$OUT/$name/zero_shot.json" | tail -n 1 | sed "s/^/$setting: /"
done
