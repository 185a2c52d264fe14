# Set-up and everyday commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# Without a GPU, torch comes from PyTorch's CPU index (PyPI's Linux wheel bundles CUDA, several GB),
# unless pip's own sources already hold that version (as a local wheel folder, for instance).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAS_GPU := $(shell command -v nvidia-smi 2>/dev/null)
# the PostgreSQL server that tests/test_sweep_postgres.py starts (Debian keeps it off PATH)
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) $(shell command -v initdb 2>/dev/null))
ARGS ?=

.PHONY: help install postgres run test lint format docs smoke clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python  ## create .venv and install laser with its dev extras
	@$(BIN)/python -c "import torch" 2>/dev/null \
	  || $(BIN)/pip install -q --no-index --no-deps "torch==$(TORCH_VERSION)" 2>/dev/null \
	  || $(BIN)/pip install -q "torch==$(TORCH_VERSION)" $(if $(HAS_GPU),,--extra-index-url $(TORCH_CPU_INDEX))
	$(BIN)/pip install -q -e ".[dev]"

run: install  ## train the default LaSeR experiment (pass overrides with ARGS="algo=grpo ...")
	$(BIN)/python -m laser.run $(ARGS)

postgres:  ## install the PostgreSQL server for the shared-study sweep tests (apt-get, as root)
ifeq ($(PG_INITDB),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing the PostgreSQL server for tests/test_sweep_postgres.py (apt-get install postgresql)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
	    || echo "apt-get failed: tests/test_sweep_postgres.py will be skipped (or fail under CI=true)"; \
	else \
	  echo "No PostgreSQL server found: tests/test_sweep_postgres.py will be skipped. To run it, install"; \
	  echo "the server: sudo apt-get install postgresql (Debian/Ubuntu), or your system's package."; \
	fi
else
	@echo "PostgreSQL server: $(dir $(PG_INITDB))"
endif

test: install postgres  ## run the test suite (not the GPU tests)
	$(BIN)/python -m pytest -q

lint: install  ## ruff lint and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

docs: install  ## build the documentation site into site/ (a broken link or anchor fails it)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

smoke: install  ## the whole pipeline in seconds
	$(BIN)/python -m laser.run debug=fast

clean:  ## remove the virtual environment, caches and outputs
	rm -rf $(VENV) .cache outputs site
