# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-external-pg test-fast lint typecheck bench bench-forecast bench-forecast-scale bench-proposals bench-web chromium clean test-distributed compose-config bench-pipeline

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -e '.[dev,bench,web-test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/replenish demo

# The browser tests drive Debian's Chromium (Playwright never downloads a browser): install it when missing.
# A no-op when /usr/bin/chromium exists; apt-get needs root (CI runs as root), else sudo.
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# The same database-facing tests against the machine's PostgreSQL on 127.0.0.1:5432.
test-external-pg: install
	REPLENISH_TEST_EXTERNAL_PG=1 $(BIN)/pytest -q tests/test_extract_loader.py tests/test_quality_gate.py \
		tests/test_orders_db.py tests/test_dbt_build.py

# The nightly DAG on a real CeleryExecutor: the machine's Redis and PostgreSQL, two local Celery workers.
# Skipped (with the reason) when Redis on 127.0.0.1:6379 or PostgreSQL on 127.0.0.1:5432 is not reachable.
test-distributed: install
	REPLENISH_TEST_DISTRIBUTED=1 $(BIN)/pytest -q -m distributed tests/test_distributed.py

# docker-compose.yml stays valid: `docker compose config`, or Debian's docker-compose (v1, validates against
# the compose schema without a Docker engine), installed like Chromium above when neither is present.
compose-config:
	@if docker compose version >/dev/null 2>&1; then docker compose config -q; else \
		command -v docker-compose >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
			DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q docker-compose; }; \
		docker-compose config -q; fi
	@echo "docker-compose.yml: valid"

test-fast: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

bench-forecast: install
	$(BIN)/replenish bench forecast

bench-forecast-scale: install
	$(BIN)/replenish bench forecast-scale

bench-proposals: install
	$(BIN)/replenish bench proposals

bench-web: install
	$(BIN)/replenish bench web

# The end-to-end nightly run per stage with peak memory: the bakery demo and a synthetic 200x150 chain.
bench-pipeline: install
	$(BIN)/replenish bench pipeline

bench: bench-forecast bench-proposals bench-web bench-pipeline

clean:
	-$(BIN)/replenish db stop
	rm -rf .state
