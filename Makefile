# Two commands (see README):  make demo   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Simulate a cohort, ingest it into an embedded SQLite database, print a summary.
demo: $(STAMP)
	$(BIN)/journey demo

## Start PostgreSQL and Kafka from infra/, run lint, type checks, import contracts and all tests.
test: $(STAMP)
	bash infra/run-tests.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python infra/typecheck.py
	$(BIN)/python infra/lint_imports.py --no-logo

## Benchmarks (figures printed beside a baseline measured in the same run).
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .typecheck journey-demo
