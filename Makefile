# Everything a newcomer needs: `make demo` and `make test`, from a fresh clone, with only
# Python >= 3.11 and make. The virtual environment is rebuilt when any pyproject changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROVIDERS := $(sort $(dir $(wildcard providers/*/pyproject.toml)))
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install test lint typecheck unit demo bench clean

help:
	@echo "make demo   run the whole job against a local stand-in issuer (no Harbor account needed)"
	@echo "make test   lint (ruff), type-check (mypy) and run every test, real servers included"
	@echo "make bench  print start-up and throughput figures"
	@echo "make clean  remove the virtual environment and caches"

$(STAMP): pyproject.toml requirements-dev.txt $(addsuffix pyproject.toml,$(PROVIDERS))
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e . $(addprefix -e ,$(PROVIDERS))
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/harbor-secrets demo --directory demo-output

bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/sync_envfile.py

clean:
	rm -rf $(VENV) demo-output .mypy_cache .ruff_cache .pytest_cache
