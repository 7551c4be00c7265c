# Two set-up commands for a fresh machine: `make demo` (the main job) and `make test`.
# Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/diffguide: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: demo test bench-overhead
demo: $(BIN)/diffguide
	$(BIN)/diffguide demo --out out/demo

test: $(BIN)/diffguide
	$(BIN)/pytest -q

bench-overhead: $(BIN)/diffguide
	$(BIN)/python -m diffguide.benchmarks.overhead
