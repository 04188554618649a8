# The two commands: `make demo` (set up, run the pipeline on MovieLens 100K, serve it) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
export RECO_MOVIELENS_DIR ?= $(abspath ../shared/data/ml-100k)
export PYSPARK_PYTHON := $(abspath $(PY))
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help setup system-deps test pipeline demo serve airflow redis-up redis-down bench bench-pipeline bench-serving bench-quality tune clean

help:
	@echo "make demo            set up, run the DAG once on MovieLens 100K, then serve on 127.0.0.1:$${RECO_PORT:-8000}"
	@echo "make test            the whole test suite (real Spark, Redis, Great Expectations, Airflow)"
	@echo "make setup           .venv with the pinned dependencies; checks Java 17+ and redis-server"
	@echo "make pipeline        every Spark job in order, no Airflow; prints the path of metrics.json"
	@echo "make serve           the lookup service under gunicorn (RECO_REDIS_URL, RECO_PORT)"
	@echo "make airflow         airflow standalone with the project's DAG (UI on 127.0.0.1:8080)"
	@echo "make bench           bench-pipeline, bench-serving, bench-quality (JSON + markdown in benchmarks/results)"
	@echo "make tune            hyperparameter search for implicit ALS (leaderboard in data/tune/)"

setup: system-deps $(STAMP)

# Java 17+ and redis-server: install with apt-get when root and missing, otherwise stop with a clear message.
system-deps:
	@need=(); \
	jv=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$jv" ] || [ "$$jv" -lt 17 ]; then need+=(openjdk-17-jre-headless); fi; \
	command -v redis-server >/dev/null || need+=(redis-server); \
	command -v redis-benchmark >/dev/null || need+=(redis-tools); \
	if [ $${#need[@]} -gt 0 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing $${need[*]} with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$${need[@]}" >/dev/null; \
	  else \
	    echo "setup: missing $${need[*]}: install Java 17 or 21 and redis-server (e.g. sudo apt-get install $${need[*]})" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@echo "setup: installing pinned Python dependencies into $(VENV) (first run: about a minute)"
	@$(PY) -m pip install -q --upgrade "pip>=24"
	@$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

test: setup
	$(PY) -m pytest -q

pipeline: setup
	@$(PY) -m jobs.pipeline $(if $(RUN_ID),--run-id $(RUN_ID))

clean:
	rm -rf data .airflow .redis .pytest_cache
