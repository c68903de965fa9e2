# Two entry points for a fresh clone: `make demo` and `make test`. Both create the virtualenv
# (.venv) and install the package with its dev extras on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-unit test-integration lint docs mutation benchmarks clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed; run with PYTHON=python3.X")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

## Command 1: the example site on http://127.0.0.1:8000 against the built-in emulator.
demo: $(STAMP)
	bash scripts/demo.sh

## Command 2: the whole test suite (unit on SQLite, then integration on PostgreSQL + Redis).
test: $(STAMP)
	bash scripts/test.sh

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

test-integration: $(STAMP)
	bash scripts/test.sh integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

## The documentation site (mkdocs.yml), checked as CI checks it, then served on
## http://127.0.0.1:$(DOCS_PORT)/ with live reload.
DOCS_PORT ?= 8001
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(VENV)/docs-site
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

## Mutation testing of the critical modules, each against its own tests (docs/mutation.md);
## one unit: make mutation MODULE=sync/policy.py. Long: it runs under nice, one mutant at a time.
mutation: $(STAMP)
	nice -n 19 $(BIN)/python scripts/mutation.py $(MODULE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info site mutants
