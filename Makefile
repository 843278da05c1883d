# The README's commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# llama-cpp-python compiles llama.cpp on install; we need no multimodal part.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
# llama.cpp is built for this machine's CPU, but without its AMX kernels: on virtual machines that
# report AMX (Xeon Sapphire Rapids and later) their tile instructions fault (SIGILL) when a thread
# other than the one that loaded the model decodes, which is how our worker decodes (seen on such a
# VPS; the main-thread path works, so a quick check does not show it). The flags reach llama.cpp's
# own tools too (`make bench`).
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
export CFLAGS += $(NO_AMX)
export CXXFLAGS += $(NO_AMX)
endif

.DEFAULT_GOAL := help
.PHONY: help run invite token test test-fast test-postgres deploy-check bench lint lock audit model test-models bench-models migrate browser speech documents backup restore clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# Installs come from the lock files: every package, direct or not, at a pinned version whose
# download must match a recorded SHA-256. requirements*.txt name what we chose; `make lock` resolves
# the rest.
$(VENV)/.installed: requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --require-hashes -r requirements.lock
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(PY) -m pip install --require-hashes -r requirements-dev.lock
	touch $@

LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --no-header

lock: $(VENV)/.installed-dev ## Re-resolve requirements*.lock after changing requirements*.txt
	$(LOCK) requirements.txt -o requirements.lock
	$(LOCK) requirements-dev.txt --constraint requirements.lock -o requirements-dev.lock

audit: $(VENV)/.installed-dev ## Check every locked package against known vulnerabilities (needs PyPI's API)
	$(PY) -m deploy.audit requirements-dev.lock

model: $(VENV)/.installed ## Fetch the model (by default, the one for this machine's memory) and the speech model (PRESET=list: others)
	$(PY) -m stack.model $(if $(PRESET),--preset "$(PRESET)")

# The tests run the fast model beside the default; the benchmarks every size they measure.
test-models: $(VENV)/.installed
	$(PY) -m stack.model --fetch smollm2-135m

bench-models: $(VENV)/.installed
	$(PY) -m stack.model --fetch smollm2-135m --fetch qwen2.5-coder-0.5b --fetch qwen2.5-coder-1.5b

migrate: $(VENV)/.installed ## Apply database migrations
	$(PY) -m shared.migrate

run: $(VENV)/.installed ## Run the whole stack in the foreground (Ctrl-C stops it)
	$(PY) -m stack

invite: $(VENV)/.installed ## A one-time personal link to the web chat: make invite NAME=alice
	@test -n "$(NAME)" || { echo "Usage: make invite NAME=alice"; exit 1; }
	@$(PY) -m shared.migrate >/dev/null
	@$(PY) -m api.invite "$(NAME)"

token: $(VENV)/.installed ## A personal API token for /v1 clients: make token NAME=alice [DAYS=90] (REVOKE=1: revoke alice's tokens)
	@test -n "$(NAME)" || { echo "Usage: make token NAME=alice [DAYS=90] [REVOKE=1]"; exit 1; }
	@$(PY) -m shared.migrate >/dev/null
	@$(PY) -m api.invite "$(NAME)" $(if $(REVOKE),--revoke,--api $(if $(DAYS),--days $(DAYS)))

browser: ## Make sure Chromium is there for the web page's tests (installs it as root on Debian/Ubuntu)
	@command -v chromium >/dev/null 2>&1 || { test "$$(id -u)" = 0 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } || \
		{ echo "The web page tests need Chromium: apt-get install chromium"; exit 1; }

speech: ## Make sure espeak-ng and Festival's Russian voice are there: the voice tests speak with them (installs them as root)
	@{ command -v espeak-ng && command -v text2wave && test -d /usr/share/festival/voices/russian; } >/dev/null 2>&1 || \
		{ test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends espeak-ng festival festvox-ru; } || \
		{ echo "The voice tests need espeak-ng and Festival's Russian voice: apt-get install espeak-ng festival festvox-ru"; exit 1; }

documents: ## Make sure Tesseract (Russian, English) and the DejaVu fonts are there: photos of pages are read with it, the tests write Russian PDFs with them (installs them as root)
	@{ test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf && command -v tesseract && \
		tesseract --list-langs 2>&1 | grep -qx rus; } >/dev/null 2>&1 || \
		{ test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends fonts-dejavu-core tesseract-ocr tesseract-ocr-rus tesseract-ocr-eng; } || \
		{ echo "Documents need Tesseract and the DejaVu fonts: apt-get install tesseract-ocr tesseract-ocr-rus tesseract-ocr-eng fonts-dejavu-core"; exit 1; }

test: $(VENV)/.installed-dev test-models browser speech documents ## Run the whole test suite
	$(PY) -m pytest

test-fast: $(VENV)/.installed-dev test-models speech documents ## The fast tests (no real model), bot behaviours included, on two processes
	$(PY) -m pytest -m "not slow" -n 2

test-postgres: $(VENV)/.installed-dev test-models speech documents ## The database, pipeline, voice and reliability tests against PostgreSQL at TEST_DATABASE_URL
	@test -n "$(TEST_DATABASE_URL)" || { echo "Set TEST_DATABASE_URL=postgresql+psycopg://user:pass@host/db"; exit 1; }
	TEST_DATABASE_URL="$(TEST_DATABASE_URL)" $(PY) -m pytest tests/api tests/shared tests/worker tests/voice tests/reliability tests/documents

deploy-check: test-models speech ## As root: deploy with docker compose on a real Docker engine and check it (~20 min)
	$(PY) -m deploy.smoke

bench: $(VENV)/.installed-dev bench-models documents ## Benchmarks against baselines in the same run: bench/results.md and .png
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
