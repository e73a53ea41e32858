# `make demo` and `make test` each set up .venv first (see scripts/setup.sh).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
VENV := .venv/bin

.PHONY: setup demo demo-emoji demo-fashion test test-slow lint bench app

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/diffdis demo --out runs/demo

demo-fashion: setup
	$(VENV)/diffdis demo --data fashion-mnist --out runs/demo-fashion

demo-emoji: setup
	$(VENV)/diffdis demo --data emoji --out runs/demo-emoji

app: setup
	@[ -f runs/demo/model/diffdis_config.json ] || { echo "runs/demo/model is missing: run 'make demo' first (about 15 minutes on 2 CPU cores)" >&2; exit 2; }
	$(VENV)/diffdis app --model runs/demo/model

lint: setup
	$(VENV)/ruff check src tests benchmarks
	$(VENV)/ruff format --check src tests benchmarks

bench: setup
	$(VENV)/python -m benchmarks.run_all

test: lint
	$(VENV)/pytest -q

test-slow: setup
	$(VENV)/pytest -q -m slow
