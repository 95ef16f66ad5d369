# One-command entry points (README: Quick start).
#   make test   create .venv, install the project, lint, and run the whole test suite
#   make serve  create .venv, install the project, and start the service with embedded defaults
#               (other ports: make serve PORT=8100 MLFLOW_PORT=5100; HOST=0.0.0.0 to listen beyond loopback)
#   make bench  run the benchmarks (figures go in benchmarks/RESULTS.md)
#   make images build the api, ray (CPU variant) and mlflow images, and the local postgres stand-in, with
#               docker or podman (docker/README.md); torch from TORCH_INDEX_URL when set, e.g.
#               make images TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#   make test-containers  make images, then the compose stack in real containers (tests marked `containers`)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST        ?= 127.0.0.1
PORT        ?= 8000
MLFLOW_PORT ?= $(or $(MIXUP_STUDIES_MLFLOW_UI_PORT),5000)

.PHONY: venv test lint format pytest serve bench images test-containers clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint pytest

serve: $(STAMP)
	MIXUP_STUDIES_MLFLOW_UI_PORT=$(MLFLOW_PORT) $(BIN)/mixup-studies serve --host $(HOST) --port $(PORT)

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Passed through to docker/build-images.sh (empty: its defaults).
TORCH_INDEX_URL ?=
IMAGE_TAG ?= latest
PYTHON_IMAGE ?=

images:
	TORCH_INDEX_URL='$(TORCH_INDEX_URL)' IMAGE_TAG='$(IMAGE_TAG)' PYTHON_IMAGE='$(PYTHON_IMAGE)' nice -n 15 docker/build-images.sh

test-containers: $(STAMP) images
	nice -n 15 $(BIN)/python -m pytest -m containers tests/docker/test_containers.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
