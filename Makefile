# One command surface: run, test, lint, types, bench, up, lock, dashboard.
# Every target bootstraps .venv itself from the pinned requirements.lock.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint types bench up down lock schema clean venv browser dashboard \
	dashboard-check dashboard-schemas

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

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The dashboard's end-to-end tests drive the system Chromium (Debian's package) with
# Playwright; Playwright's own browser download is not used. Idempotent: finds it
# ($$ATS_CHROMIUM, chromium on PATH) or, as root with apt-get, installs it.
browser:
	@if [ -n "$$ATS_CHROMIUM" ] && [ -x "$$ATS_CHROMIUM" ]; then exit 0; fi; \
	if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the dashboard tests (apt-get)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	    || { echo "could not install chromium with apt-get: install it, or set ATS_CHROMIUM=/path/to/chromium" >&2; exit 1; }; \
	else \
	  echo "chromium not found: install it (apt-get install chromium) or set ATS_CHROMIUM=/path/to/chromium" >&2; exit 1; \
	fi

# Rebuild the operator dashboard into gateway/static/dashboard/ (committed, so `make
# run` needs no Node). Needs Node >= 20.19 and npm.
dashboard:
	cd dashboard && npm ci --no-audit --no-fund && npm run build

# Fail when the committed build is not what the source builds to: the same npm ci and
# build, into a temporary directory, compared file by file (the build is deterministic:
# the same source gives the same hashed names); a built file git does not track fails
# too. Part of `make lint`.
dashboard-check:
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && cd dashboard && \
	npm ci --no-audit --no-fund --silent && \
	npm run --silent build -- --outDir "$$out" --emptyOutDir --logLevel error && \
	if ! diff -rq "$$out" ../gateway/static/dashboard; then \
	  echo "gateway/static/dashboard/ is not the build of dashboard/: run make dashboard and commit" >&2; \
	  exit 1; \
	fi; \
	if git rev-parse --git-dir >/dev/null 2>&1 && \
	   [ -n "$$(git ls-files --others --exclude-standard ../gateway/static/dashboard)" ]; then \
	  git ls-files --others --exclude-standard ../gateway/static/dashboard; \
	  echo "these built files are not in git: git add gateway/static/dashboard and commit" >&2; \
	  exit 1; \
	fi; echo "dashboard: the committed build matches the source"

# The LLM group config's schema bundled into the dashboard (the gateway cannot serve
# it: it imports no service); tests/gateway/test_dashboard_schemas.py checks the copy.
dashboard-schemas: $(STAMP)
	$(BIN)/python -m tests.gateway.test_dashboard_schemas > dashboard/src/schemas/llm-group.json.tmp
	mv dashboard/src/schemas/llm-group.json.tmp dashboard/src/schemas/llm-group.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ats schema --check docs/protocol.schema.json
	$(MAKE) --no-print-directory dashboard-check

types: $(STAMP)
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/ats schema > docs/protocol.schema.json

bench: $(STAMP)
	$(BIN)/python bench/gateway.py $(BENCH_ARGS)
	$(BIN)/python bench/indicators.py
	$(BIN)/python bench/backtest.py

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
