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

## Run the test suite (starts a real Neo4j for the session unless NEO4J_URI is set). Two pytest processes
## side by side on the machine's cores: the tests that use the graph (one database: they run in order;
## tests/conftest.py marks them neo4j) stream here, the rest run beside them and print when done.
## The rest never sees NEO4J_URI, so none of it can touch the database the graph tests are using.
## (pytest-xdist's loadgroup would do this, but its groups do not reach pytest 9's node ids.)
test: install
	@tmp=$$(mktemp -d /tmp/perturbgraph-test.XXXXXX); \
	env -u NEO4J_URI -u NEO4J_PASSWORD $(PY) -m pytest -m "not neo4j" --durations=10 --basetemp "$$tmp/rest" >"$$tmp/rest.log" 2>&1 & \
	rest=$$!; \
	echo "tests that use the graph (the other tests run beside them; their output follows):"; \
	$(PY) -m pytest -m neo4j --durations=10 --basetemp "$$tmp/graph"; graph_rc=$$?; \
	wait $$rest; rest_rc=$$?; \
	echo; echo "tests that do not use the graph:"; cat "$$tmp/rest.log"; \
	echo "exit status: graph tests $$graph_rc, other tests $$rest_rc"; rm -rf "$$tmp"; \
	if [ $$graph_rc -ne 0 ]; then exit $$graph_rc; fi; exit $$rest_rc

lint: install
	$(VENV)/bin/ruff check graph models pipelines tests benchmarks

neo4j-start: install
	$(VENV)/bin/perturbgraph neo4j start

neo4j-stop: install
	$(VENV)/bin/perturbgraph neo4j stop
