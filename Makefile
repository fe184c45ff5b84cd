# One task runner. Every target sets up .venv/ first (python3 -m venv + pip).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# This machine has a local CPU wheel for torch 2.13.0; pin it so pip never pulls a multi-GB
# CUDA build here. On a GPU box: make TORCH_SPEC='torch>=2.1' (or install torch first).
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff format --check backend tests bench samples
	$(VENV)/bin/ruff check backend tests bench samples
	$(VENV)/bin/mypy backend

format: venv
	$(VENV)/bin/ruff format backend tests bench samples
	$(VENV)/bin/ruff check --fix backend tests bench samples

test: lint
	$(PY) -m pytest -q -ra tests

demo: venv
	$(PY) bench/demo.py

bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache samples/*/.cache
