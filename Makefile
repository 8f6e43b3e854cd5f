# Bootstrap: `make run` sets up and runs the default scenario; `make test` sets up and runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint clean viz

setup: $(STAMP)

$(STAMP): pyproject.toml
	@PYTHON=$$(sh .ci/find-python) || exit 1; \
	echo "using $$PYTHON ($$($$PYTHON --version))"; \
	$$PYTHON -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,dask,viz,browser]"
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/ecosystem run

test: $(STAMP)
	$(PY) -m pytest

viz: $(STAMP)
	$(VENV)/bin/ecosystem viz $(SCENARIO)

lint: $(STAMP)
	$(VENV)/bin/ruff check ecosystem tests scenarios viz benchmarks

clean:
	rm -rf $(VENV) results
