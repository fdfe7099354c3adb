# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint typecheck bench bench-forecast clean

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

test-fast: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

bench-forecast: install
	$(BIN)/replenish bench forecast

bench: bench-forecast

clean:
	-$(BIN)/replenish db stop
	rm -rf .state
