# The README's commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# llama-cpp-python compiles llama.cpp on install; we need no multimodal part.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.DEFAULT_GOAL := help
.PHONY: help run invite token test test-postgres deploy-check bench lint model migrate browser backup restore clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

model: $(VENV)/.installed ## Fetch the default model into data/models (if missing)
	$(PY) -m stack.model

migrate: $(VENV)/.installed ## Apply database migrations
	$(PY) -m shared.migrate

run: $(VENV)/.installed ## Run the whole stack in the foreground (Ctrl-C stops it)
	$(PY) -m stack

invite: $(VENV)/.installed ## A one-time personal link to the web chat: make invite NAME=alice
	@test -n "$(NAME)" || { echo "Usage: make invite NAME=alice"; exit 1; }
	@$(PY) -m shared.migrate >/dev/null
	@$(PY) -m api.invite "$(NAME)"

token: $(VENV)/.installed ## A personal API token for /v1 clients: make token NAME=alice
	@test -n "$(NAME)" || { echo "Usage: make token NAME=alice"; exit 1; }
	@$(PY) -m shared.migrate >/dev/null
	@$(PY) -m api.invite "$(NAME)" --api

browser: ## Make sure Chromium is there for the web page's tests (installs it as root on Debian/Ubuntu)
	@command -v chromium >/dev/null 2>&1 || { test "$$(id -u)" = 0 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } || \
		{ echo "The web page tests need Chromium: apt-get install chromium"; exit 1; }

test: $(VENV)/.installed-dev model browser ## Run the whole test suite
	$(PY) -m pytest

test-postgres: $(VENV)/.installed-dev model ## The database, pipeline and reliability tests against PostgreSQL at TEST_DATABASE_URL
	@test -n "$(TEST_DATABASE_URL)" || { echo "Set TEST_DATABASE_URL=postgresql+psycopg://user:pass@host/db"; exit 1; }
	TEST_DATABASE_URL="$(TEST_DATABASE_URL)" $(PY) -m pytest tests/api tests/shared tests/worker tests/reliability

deploy-check: model ## As root: deploy with docker compose on a real Docker engine and check it (~20 min)
	$(PY) -m deploy.smoke

bench: $(VENV)/.installed-dev model ## Benchmarks against baselines in the same run: bench/results.md and .png
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m bench.run

lint: $(VENV)/.installed-dev ## ruff (lint and format) and strict mypy, as CI runs them
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

backup: $(VENV)/.installed ## Consistent copy of the SQLite database into data/backups (safe while running)
	$(PY) -m stack.backup backup

restore: $(VENV)/.installed ## Put a backup in place (stop the stack first): make restore FILE=data/backups/…
	@test -n "$(FILE)" || { echo "Usage: make restore FILE=data/backups/<file>.db"; exit 1; }
	$(PY) -m stack.backup restore "$(FILE)"

clean: ## Remove the virtualenv (data/ is kept)
	rm -rf $(VENV)
