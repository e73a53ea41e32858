# `make demo` and `make test` each set up .venv first (see scripts/setup.sh).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
VENV := .venv/bin

.PHONY: setup demo test test-slow lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/diffdis demo --out runs/demo

lint: setup
	$(VENV)/ruff check src tests benchmarks
	$(VENV)/ruff format --check src tests benchmarks

bench: setup
	$(VENV)/python -m benchmarks.run_all

test: lint
	$(VENV)/pytest -q

test-slow: setup
	$(VENV)/pytest -q -m slow
