# The two commands the README opens with. Each creates .venv on first use.
# Python 3.11 where it exists, else the default python3 (3.11 or newer).
PY ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	@# Keep a torch the user already has (e.g. a CUDA build); otherwise take the CPU wheel.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@# The dashboard's browser tests drive Debian's chromium (Playwright never downloads a browser here).
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: tests/web will be skipped"
	@# The legacy `openai` 0.28 CLI, in its own venv (it cannot share one with openai>=1): the system test
	@# tests/system/test_legacy_openai_cli.py drives it, unchanged, against a real server.
	test -x $(VENV)/legacy-openai/bin/openai || ($(PY) -m venv $(VENV)/legacy-openai \
		&& $(VENV)/legacy-openai/bin/python -m pip install --quiet openai==0.28.1 requests aiohttp tqdm)

demo: setup
	$(BIN)/tuneforge quickstart

check:
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

test: setup check

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
