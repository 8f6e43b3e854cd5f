# Bootstrap: `make run` sets up and runs the default scenario; `make test` sets up and runs the tests.
# Each target installs only what it needs into one virtualenv (.venv): the core package for
# `run`, plus the viz extra for `viz`, plus every test dependency for `test`. `test` first checks
# the import layers (lint-imports, configured in pyproject.toml), then runs pytest, then executes the
# tutorial notebook (docs/tutorial.ipynb, through nbmake).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint clean viz

setup: $(VENV)/.test

$(PY):
	@PYTHON=$$(sh .ci/find-python) || exit 1; \
	echo "using $$PYTHON ($$($$PYTHON --version))"; \
	$$PYTHON -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.core: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.viz: $(VENV)/.core
	$(PY) -m pip install --quiet -e ".[viz]"
	@touch $@

$(VENV)/.test: $(VENV)/.core
	$(PY) -m pip install --quiet -e ".[dev,dask,viz,browser,learned]"
	@touch $@

run: $(VENV)/.core
	$(VENV)/bin/ecosystem run

test: $(VENV)/.test
	$(VENV)/bin/lint-imports
	$(PY) -m pytest
	$(PY) -m pytest --nbmake docs/tutorial.ipynb

viz: $(VENV)/.viz
	$(VENV)/bin/ecosystem viz $(SCENARIO)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check ecosystem tests scenarios viz benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) results
