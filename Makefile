# The two set-up commands of the README: `make serve` and `make test`.
# Both create ./.venv and install what they need into it (PyPI only, no model downloads).

VENV ?= .venv
PYTHON ?= python3
ARGS ?=
PYTEST_ARGS ?=
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: serve test venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python

## Start the server (ARGS="--upstream-url http://gpu-node:8000/v1" for the gateway).
serve: venv
	$(PIP) install -q -e '.[lite]'
	$(BIN)/openai-ocr serve $(ARGS)

## Run the test suite.
test: venv
	$(PIP) install -q -e '.[dev,lite]'
	$(BIN)/python -m pytest $(PYTEST_ARGS)
