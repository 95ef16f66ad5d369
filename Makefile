# One-command entry points (README: Quick start).
#   make test   create .venv, install the project, lint, and run the whole test suite
#   make serve  create .venv, install the project, and start the service with embedded defaults
#               (other ports: make serve PORT=8100 MLFLOW_PORT=5100; HOST=0.0.0.0 to listen beyond loopback)
#   make bench  run the benchmarks (figures go in benchmarks/RESULTS.md)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST        ?= 127.0.0.1
PORT        ?= 8000
MLFLOW_PORT ?= $(or $(MIXUP_STUDIES_MLFLOW_UI_PORT),5000)

.PHONY: venv test lint format pytest serve bench clean

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
