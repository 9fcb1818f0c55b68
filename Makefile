# PerturbGraph — the two set-up commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= $(HOME)/.cache/perturbgraph/venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: install demo test lint neo4j-start neo4j-stop results benchmarks

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Full dependency install only when pyproject.toml changes; the editable link is refreshed every
# time so a second clone (CI) never imports another checkout's code.
$(DEPS_STAMP): pyproject.toml | $(PY)
	@echo "installing dependencies into $(VENV) (first time: several minutes, torch is large)…"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(DEPS_STAMP)

install: $(DEPS_STAMP)
	@$(PY) -m pip install -q --no-deps --no-build-isolation -e . >$(VENV)/.editable.log 2>&1 \
		|| { cat $(VENV)/.editable.log; exit 1; }

## Install everything, start Neo4j, materialize every asset on the default dataset, print a summary.
demo: install
	$(VENV)/bin/perturbgraph demo

## Run the test suite (starts a real Neo4j for the session unless NEO4J_URI is set). Two worker processes:
## the tests of the graph (one database) run in order on one, the rest on both (tests/conftest.py groups them).
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: install
	$(VENV)/bin/ruff check graph models pipelines tests benchmarks

neo4j-start: install
	$(VENV)/bin/perturbgraph neo4j start

neo4j-stop: install
	$(VENV)/bin/perturbgraph neo4j stop
