# One command surface: run, test, lint, types, bench, up, lock.
# Every target bootstraps .venv itself from the pinned requirements.lock.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint types bench up down lock schema clean venv

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@PY=$$(sh deploy/find-python.sh) || exit 1; \
	if [ ! -x $(BIN)/python ] || ! $(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then \
	  echo "creating $(VENV) with $$PY"; rm -rf $(VENV); "$$PY" -m venv $(VENV) || exit 1; \
	fi
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ats run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ats schema --check docs/protocol.schema.json

types: $(STAMP)
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/ats schema > docs/protocol.schema.json

bench: $(STAMP)
	$(BIN)/python bench/gateway.py $(BENCH_ARGS)
	$(BIN)/python bench/indicators.py

up:
	docker compose up --build

down:
	docker compose down

# Re-pin every dependency after editing pyproject.toml.
lock:
	@PY=$$(sh deploy/find-python.sh) || exit 1; \
	"$$PY" -m venv .lockenv && .lockenv/bin/pip install -q uv && \
	.lockenv/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.12 -o requirements.lock; \
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
