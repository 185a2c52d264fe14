# Set-up and everyday commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# Without a GPU, torch comes from PyTorch's CPU index (PyPI's Linux wheel bundles CUDA, several GB),
# unless pip's own sources already hold that version (as a local wheel folder, for instance).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAS_GPU := $(shell command -v nvidia-smi 2>/dev/null)
ARGS ?=

.PHONY: help install run test test-all lint format smoke clean

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

test: install  ## run the test suite (not the GPU tests)
	$(BIN)/python -m pytest -q

lint: install  ## ruff lint and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

smoke: install  ## the whole pipeline in seconds
	$(BIN)/python -m laser.run debug=fast

clean:  ## remove the virtual environment, caches and outputs
	rm -rf $(VENV) .cache outputs
