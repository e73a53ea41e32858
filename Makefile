# `make demo` and `make test` each set up .venv first (see scripts/setup.sh).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
VENV := .venv/bin

.PHONY: setup demo demo-emoji demo-fashion release test test-fast test-slow lint bench gpu-check app

setup:
	@bash scripts/setup.sh

# The main demo stays the ten-class Fashion-MNIST one; demo-emoji measures zero-shot transfer to concepts no training
# caption named, but misses its targets in 12 minutes of training (docs/demos.md, "The emoji demo, measured").
demo: demo-fashion

demo-emoji: setup
	$(VENV)/diffdis demo --data emoji --out runs/demo-emoji

# The released emoji model (src/diffdis/released/emoji-16): 10,000 steps with REPA and validation curves (about 51
# minutes of training on 2 quiet CPU cores, plus 6 of evaluation; a CUDA GPU, with its torch in .venv, runs the same
# command in minutes), resumable, then its figures of record and the shipped folder. Its record: docs/release.md.
release: setup
	$(VENV)/diffdis release

demo-fashion: setup
	$(VENV)/diffdis demo --data fashion-mnist --out runs/demo-fashion

# A demo model you trained when there is one (emoji first: it is tested on concepts it never saw), else the released
# emoji model that ships with the package (diffdis.list_pretrained()).
app: setup
	@for m in runs/demo-emoji/model runs/demo-fashion/model runs/demo/model; do \
		if [ -f $$m/diffdis_config.json ]; then exec $(VENV)/diffdis app --model $$m; fi; \
	done; exec $(VENV)/diffdis app --model emoji-16

lint: setup
	$(VENV)/ruff check src tests benchmarks
	$(VENV)/ruff format --check src tests benchmarks

bench: setup
	$(VENV)/python -m benchmarks.run_all

# The sd preset at full size on a CUDA GPU (under 10 minutes, runs/bench/gpu_check.json; bring a CUDA torch:
# scripts/setup.sh keeps one already in .venv). Without CUDA it runs a reduced mode on tiny shapes and says so.
gpu-check: setup
	$(VENV)/python -m benchmarks.gpu_check

# Every test (the README's test command, what CI runs); the slowest 15 are listed at the end.
test: lint
	$(VENV)/pytest -q --durations=15

# A developer's quick answer (a few minutes): everything but the tests that train, serve or run an experiment.
test-fast: lint
	$(VENV)/pytest -q -m "not slow"

test-slow: setup
	$(VENV)/pytest -q -m slow
