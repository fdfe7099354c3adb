# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-external-pg test-fast lint typecheck bench bench-forecast bench-proposals clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -e '.[dev,bench,web-test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/replenish demo

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# The same database-facing tests against the machine's PostgreSQL on 127.0.0.1:5432.
test-external-pg: install
	REPLENISH_TEST_EXTERNAL_PG=1 $(BIN)/pytest -q tests/test_extract_loader.py tests/test_quality_gate.py \
		tests/test_orders_db.py tests/test_dbt_build.py

test-fast: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

bench-forecast: install
	$(BIN)/replenish bench forecast

bench-proposals: install
	$(BIN)/replenish bench proposals

bench: bench-forecast bench-proposals

clean:
	-$(BIN)/replenish db stop
	rm -rf .state
