# Everything a newcomer needs: `make demo` and `make test`, from a fresh clone, with only
# Python >= 3.11 and make. The virtual environment is rebuilt when any pyproject changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROVIDERS := $(sort $(dir $(wildcard providers/*/pyproject.toml)))
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
DIST ?= dist

.PHONY: help install test lint typecheck unit demo bench reliability dist lambda-zip clean

help:
	@echo "make demo   run the whole job against a local stand-in issuer (no Harbor account needed)"
	@echo "make test   lint (ruff), type-check (mypy) and run every test, real servers included"
	@echo "make bench  measure against local servers and regenerate docs/BENCHMARKS.md and"
	@echo "            docs/AVAILABILITY.md (replicas killed and restarted for ~2.5 hours)"
	@echo "make reliability  run the fault-injection suite and regenerate docs/RELIABILITY.md"
	@echo "make dist   build the wheel and sdist of the core and of every provider into dist/,"
	@echo "           and dist/requirements.txt, which installs exactly those (V=1: verbose)"
	@echo "make lambda-zip  build dist/harbor-secrets-lambda.zip for AWS Lambda"
	@echo "make clean  remove the virtual environment and caches"

# PYTHONWARNINGS drops the one banner setuptools prints for every editable install of a
# package that is not in a src/ directory ("Please be careful with folders in your working
# directory ..."), which --quiet does not silence: it is advice for setuptools users, not news.
$(STAMP): pyproject.toml requirements-dev.txt testkit/pyproject.toml $(addsuffix pyproject.toml,$(PROVIDERS))
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e . $(addprefix -e ,$(PROVIDERS)) -e testkit
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict tests
	$(BIN)/mypy --strict conftest.py tools
	@for dir in providers/*/tests; do echo "$(BIN)/mypy --strict $$dir"; $(BIN)/mypy --strict $$dir || exit 1; done

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/harbor-secrets demo --directory demo-output

bench: $(STAMP)
	$(BIN)/python bench/run_all.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/sync_envfile.py
	$(BIN)/python providers/vault/bench/bench_vault_kv2.py
	$(BIN)/python providers/aws/bench/bench_lambda_cold_start.py
	$(BIN)/python bench/availability.py

reliability: $(STAMP)
	HARBOR_SECRETS_WRITE_RELIABILITY=1 $(BIN)/pytest tests/reliability -q $(PYTEST_ARGS)

# Nothing is on PyPI yet: users install from these files. Each is built sdist first, then the
# wheel from that sdist, in an isolated environment; never the test kit. Our own old builds go
# first so two versions never mix; anything else in $(DIST)/ (the Lambda zip) is kept. Then
# $(DIST)/requirements.txt pins each to its SHA-256 and to this directory (no index), which is
# what the README's install uses. Quiet unless it fails (the build's log is shown then); V=1
# shows the builds' own output.
dist: $(STAMP)
	@mkdir -p $(DIST)
	rm -f $(DIST)/harbor_secrets*.whl $(DIST)/harbor_secrets*.tar.gz $(DIST)/harbor-secrets*.tar.gz
	@for project in . $(PROVIDERS); do \
		echo "$(BIN)/python -m build --outdir $(DIST) $$project"; \
		if [ -n "$(V)" ]; then $(BIN)/python -m build --outdir $(DIST) $$project || exit 1; \
		elif ! log=$$($(BIN)/python -m build --outdir $(DIST) $$project 2>&1); then \
			echo "$$log"; exit 1; \
		fi; \
	done
	@$(BIN)/python tools/dist_requirements.py $(DIST)

lambda-zip: $(STAMP)
	$(BIN)/python providers/aws/build_lambda_zip.py --output dist/harbor-secrets-lambda.zip

clean:
	rm -rf $(VENV) .venv-tools .tools .venv-bench dist demo-output .mypy_cache .ruff_cache .pytest_cache
