# dbsplit developer commands. `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dbsplit-installed
PG15_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
AIRFLOW_PORT ?= 8080
# pytest-xdist workers (0: one process). Each worker has its own Airflow home and embedded PostgreSQL;
# which tests must share a worker: SHARED_FIXTURE_MODULES in tests/conftest.py.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadscope

.PHONY: install demo lint test test-pg15 airflow lock bench clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/pip install -qq --disable-pip-version-check --no-deps -e .
	touch $@

install: $(STAMP)

## demo: start the embedded PostgreSQL, create the jobboard monolith, run every service DAG, print the counts
demo: install
	$(BIN)/dbsplit demo

## lint: the layer contracts (.importlinter: which package may import which; only airflow/ and local/ import
## Airflow), ruff on the package, the DAG files and the plugin (rules: pyproject.toml; tests/ and bench/ not yet),
## and mypy on the package (pyproject.toml's [tool.mypy])
LINT_PATHS := include plugins dags
lint: install
	PYTHONPATH=$(CURDIR)/include $(BIN)/lint-imports --no-cache
	$(BIN)/ruff check $(LINT_PATHS)
	PYTHONPATH=$(CURDIR)/include $(BIN)/mypy

## test: `make lint`, then the whole test suite against the embedded PostgreSQL (or $$DBSPLIT_TEST_PG_URL)
test: lint
	$(BIN)/pytest -q $(PYTEST_PARALLEL)

## test-pg15: the integration tests against the PostgreSQL server at $(PG15_URL)
test-pg15: install
	DBSPLIT_TEST_PG_URL=$(PG15_URL) $(BIN)/pytest -q $(PYTEST_PARALLEL) -m integration

## airflow: airflow standalone on 127.0.0.1:$(AIRFLOW_PORT) (default 8080; refused when busy) with the dbsplit DAGs
airflow: install
	$(BIN)/dbsplit airflow --port $(AIRFLOW_PORT)

## bench: dbsplit against raw binary COPY (BENCH_ROWS=1000000 by default; also run with 5000000)
bench: install
	$(BIN)/python bench/run.py

## lock: regenerate constraints.txt from the current environment after changing requirements.txt
lock:
	$(BIN)/pip freeze --exclude-editable > constraints.txt

## clean: stop the embedded PostgreSQL and delete .dbsplit (its data, the local Airflow, logs, reports)
clean:
	-$(BIN)/dbsplit pg stop
	rm -rf .dbsplit
