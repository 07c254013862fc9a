# Two commands (see README):  make demo   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every Python package, pinned with its hashes (see README, "The lock").  Refresh: make lock
LOCK   := requirements/lock.txt
LOCK_ARGS ?=

.PHONY: demo test lint bench lock clean

# The venv is exactly the lock: made anew (--clear) whenever the lock or pyproject.toml
# changes, every package hash-checked, then the project itself, editable, without
# resolving anything (its build backend, setuptools, comes from the lock too).
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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

## Re-resolve requirements/lock.txt from pyproject.toml (all extras) and requirements/build.in,
## keeping today's pins where they still fit; `make lock LOCK_ARGS=--upgrade` moves every pin
## to the newest release.  The next `make demo` / `make test` reinstalls the venv from it.
## (Written to a copy, which uv reads for the pins to keep, and moved over the lock only
## when it differs, so an unchanged lock does not make the venv stale.)
lock: $(STAMP)
	cp $(LOCK) $(LOCK).new
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --all-extras \
	    --generate-hashes --custom-compile-command 'make lock' $(LOCK_ARGS) \
	    -o $(LOCK).new pyproject.toml requirements/build.in
	if cmp -s $(LOCK).new $(LOCK); then rm $(LOCK).new; echo "lock unchanged"; \
	else mv $(LOCK).new $(LOCK); echo "lock updated: $(LOCK)"; fi

clean:
	rm -rf $(VENV) .typecheck journey-demo
