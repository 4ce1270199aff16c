# Two entry points for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test check install install-test cli bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## Run the server on 127.0.0.1:8006 with ./config.yaml (SQLite under ./data, no Redis).
serve: install
	$(BIN)/claude-proxy serve --config config.yaml

## Install the pinned Claude Code CLI and Codex CLI (for tests/e2e/test_codex.py) from the npm
## registry into .cache/ (kept between runs).
cli: install-test
	$(BIN)/python -m tests.support.cli
	$(BIN)/python -m tests.support.codex

## Static checks: ruff (lint and format) and mypy, all clean.
check: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The static checks, then the whole test suite: unit tests and end-to-end tests with the real CLI.
test: check cli
	$(BIN)/python -m pytest -q

## Benchmark the proxy against a cold `claude -p` per request (prints JSON, writes bench/results/).
bench: install-test cli
	$(BIN)/python -m pip install -q matplotlib
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .cache .pytest_cache
