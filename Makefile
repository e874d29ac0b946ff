# Two commands do all the set-up: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
INSTALLED = $(VENV)/.installed

.PHONY: run test lint bench fuzz mutation

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

## Run the API on http://127.0.0.1:8000 (SQLite in ./drawdown.db unless DRAWDOWN_DATABASE_URL says otherwise).
run: $(INSTALLED)
	$(BIN)/drawdown serve

## Lint, type-check and run the tests (SQLite; DRAWDOWN_TEST_DATABASE=postgresql for PostgreSQL).
test: lint
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)
	$(BIN)/mypy

bench: $(INSTALLED)
	$(BIN)/python bench/run.py

## Schemathesis against a live server for a long run (DRAWDOWN_TEST_DATABASE picks the engine).
FUZZ_EXAMPLES ?= 500
fuzz: $(INSTALLED)
	DRAWDOWN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/test_fuzz.py -s

## Mutation testing of ledger/ against the fast tests (SQLite); see
## [tool.mutmut] in pyproject.toml. Prints the surviving mutants; `mutmut show NAME` shows one.
mutation: $(INSTALLED)
	rm -rf mutants
	DRAWDOWN_TEST_DATABASE=sqlite $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results
