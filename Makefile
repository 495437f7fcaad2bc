# Entry points, each of which sets itself up on a fresh machine:
#   make repro       install into .venv and run the whole pipeline (`dvc repro`)
#   make test        install into .venv (with the test extras) and run the whole test suite (CI)
#   make test-fast   the same without the end-to-end tests marked slow: the check while working

VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# No telemetry from DVC, MLflow or Prefect.
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup repro test test-fast lint

$(BIN)/finepseudo: pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

setup: $(BIN)/finepseudo

repro: setup
	finepseudo check   # a params error is reported as such, before DVC looks for missing files
	dvc repro

# Two pytest workers, each given whole test files, so that a file's module fixtures (the
# cluster's servers and sweep) start once; README.md, "Tests", has the times.
PYTEST := pytest --numprocesses 2 --dist loadfile

test: setup
	ruff check .
	$(PYTEST)

test-fast: setup
	ruff check .
	$(PYTEST) -m "not slow and not cluster"

lint: setup
	ruff check .
