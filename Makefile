# The two commands: `make demo` (set up, run the pipeline on MovieLens 100K, serve it) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
# Spark's driver classes, archived for the JVM to map (jobs/lib/runtime/class_archive.py): each job starts ~4 s sooner.
CLASS_ARCHIVE := $(VENV)/spark-classes.jsa
# The MLflow tracking server and its UI: a deployable of its own, in a virtualenv of its own (its pins differ from
# the project's: conf/mlflow/constraints.txt). The jobs carry only the client (mlflow-skinny).
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed
MLFLOW_PORT ?= 5000
# The MovieLens 100K copy beside the project (tests, demo), when there is one; otherwise the jobs download.
ifneq ($(wildcard ../shared/data/ml-100k/u.data),)
export RECO_MOVIELENS_DIR ?= $(abspath ../shared/data/ml-100k)
export RECO_MOVIELENS_ROOTS ?= $(abspath ../shared/data),$(abspath data)
endif
# A tagged CSV release for the tests and bench-quality, when there is one beside the project.
ifneq ($(wildcard ../shared/data/ml-latest-small-2016/tags.csv),)
export RECO_TAGGED_MOVIELENS_DIR ?= $(abspath ../shared/data/ml-latest-small-2016)
endif
export PYSPARK_PYTHON := $(abspath $(PY))
# Everything here runs on this machine: Spark binds its driver to loopback instead of scanning the network
# interfaces for a routable address (about 5 s off every Spark session here). Unset it for a real cluster.
export SPARK_LOCAL_IP ?= 127.0.0.1
export PATH := $(abspath $(BIN)):$(PATH)

# Project-local Redis for the demo and `make serve` (loopback, password, its own folder). The password is read from
# files, never put on a command line (the process list shows those): redis.conf for the server, REDISCLI_AUTH for redis-cli.
REDIS_DIR := $(abspath .redis)
REDIS_PORT ?= 6380
REDIS_URL = redis://:$$(cat $(REDIS_DIR)/password)@127.0.0.1:$(REDIS_PORT)/0
# The service and the speed layer connect as their own least-privilege users (conf/redis/*-user.acl); the jobs as
# the default one.
SERVICE_REDIS_URL = redis://reco-service:$$(cat $(REDIS_DIR)/service_password)@127.0.0.1:$(REDIS_PORT)/0
SPEED_REDIS_URL = redis://reco-speed:$$(cat $(REDIS_DIR)/speed_password)@127.0.0.1:$(REDIS_PORT)/0
# Redis refuses writes beyond this (noeviction: a version or an unarchived event is never evicted; the service
# answers 503 to writes, lookups carry on).
REDIS_MAXMEMORY ?= 1gb
RECO_PORT ?= 8000
# The speed layer (serving/speed/) of `make demo` and `make speed-layer` serves its metrics here.
SPEED_METRICS_PORT ?= 9101
# gunicorn listens here, behind nginx on RECO_PORT (serving/front.py): sync workers only ever see whole requests.
RECO_UPSTREAM_PORT ?= 8001
FRONT_DIR := $(abspath .nginx)
FRONT = $(PY) -m serving.front --dir $(FRONT_DIR) --listen 127.0.0.1:$(RECO_PORT) --upstream 127.0.0.1:$(RECO_UPSTREAM_PORT)
# Project-local Airflow: AIRFLOW_HOME in an ignored folder, this repo's DAG, Spark master local[2].
AIRFLOW_ENV = export AIRFLOW_HOME=$(abspath .airflow) AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__DAGS_FOLDER=$(abspath dags) \
	AIRFLOW_CONN_SPARK_DEFAULT="$${AIRFLOW_CONN_SPARK_DEFAULT:-{\"conn_type\": \"spark\", \"host\": \"local[2]\"}}"

# Settings a newcomer can get wrong, checked in a second before setup or anything slow starts (conf/preflight.py),
# ending make with their one line: the machine's python3 before the virtualenv exists, the virtualenv's after (the
# whole config through the loader then). Any output stops make, so Python's warnings are silenced.
ifneq ($(filter demo pipeline airflow,$(MAKECMDGOALS)),)
PREFLIGHT := $(shell $$(test -x $(PY) && echo $(PY) || echo $(PYTHON_BOOT)) -W ignore -m conf.preflight "make $(firstword $(filter demo pipeline airflow,$(MAKECMDGOALS)))" 2>&1)
ifneq ($(PREFLIGHT),)
$(error $(PREFLIGHT))
endif
endif

.PHONY: help setup system-deps test-deps load-deps mlflow-deps mlflow test test-fast pipeline demo serve speed-layer airflow redis-up redis-down bench bench-deployables bench-demo bench-pipeline bench-scale bench-serving bench-fresh bench-quality bench-experiment tune clean

help:
	@echo "make demo            set up, run the DAG once on MovieLens 100K, then serve on 127.0.0.1:$${RECO_PORT:-8000}"
	@echo "make test            the whole test suite (real Spark, Redis, Great Expectations, Airflow, Chromium)"
	@echo "make test-fast       the unit tests alone (tiny frames, no MovieLens copy needed)"
	@echo "make setup           .venv with the pinned dependencies; checks Java 17+ and redis-server"
	@echo "make pipeline        every Spark job in order, no Airflow; prints the path of metrics.json"
	@echo "make serve           the lookup service: nginx on RECO_PORT in front of gunicorn (RECO_REDIS_URL)"
	@echo "make speed-layer     the speed layer: folds new events into the live model (RECO_REDIS_URL)"
	@echo "make airflow         airflow standalone with the project's DAG (UI on 127.0.0.1:8080)"
	@echo "make mlflow          the MLflow UI (runs, metrics, the registered model and its aliases) on 127.0.0.1:$(MLFLOW_PORT)"
	@echo "make bench           every benchmark below, bench-scale (an hour or more) included; JSON + markdown in benchmarks/results"
	@echo "make bench-deployables  each deployable's venv from its dependency extra: size, import time"
	@echo "make bench-demo      make demo from a clean state, then again: setup, Airflow, each task's JVM start and work"
	@echo "make bench-pipeline  every job on ML-100K: seconds and peak memory"
	@echo "make bench-serving   lookups and intake under wrk, as ratios to floors measured in the same run"
	@echo "make bench-fresh     how soon an answer follows a rating (speed layer), and what fold-in costs"
	@echo "make bench-quality   the GUIDE protocol over three split seeds on ML-100K and the tagged release"
	@echo "make bench-experiment  A/B, A/A and sample-ratio checks with simulated people over HTTP"
	@echo "make bench-scale     the pipeline on synthetic MovieLens-shaped data, SCALE=0.1m,1m (2.5m, 10m, 25m, 32m, seed)"
	@echo "make tune            hyperparameter search for implicit ALS (leaderboard in data/runs/<run>/tune/)"

setup: system-deps $(STAMP) $(CLASS_ARCHIVE)

# Debian packages a target needs: installed with apt-get when root and missing, otherwise a one-line message.
# $(call apt_need,COMMAND-OR-TEST,PACKAGE...) is run by the targets below.
define apt_install
	@need=(); $(1); \
	if [ $${#need[@]} -gt 0 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing $${need[*]} with apt-get"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$${need[@]}"; } >/dev/null 2>&1 \
	      || { echo "setup: apt-get install $${need[*]} failed" >&2; exit 1; }; \
	  else \
	    echo "setup: missing $${need[*]}: install them (e.g. sudo apt-get install $${need[*]})" >&2; exit 1; \
	  fi; \
	fi
endef

# Java 17+, redis-server, nginx with its stream module (the service's front) and native BLAS/LAPACK for Spark's ALS (OpenBLAS, single-threaded: Spark runs the
# threads; about 25% off each ALS fit here).
system-deps:
	$(call apt_install,\
	jv=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$jv" ] || [ "$$jv" -lt 17 ]; then need+=(openjdk-17-jre-headless); fi; \
	command -v redis-server >/dev/null || need+=(redis-server); \
	command -v redis-benchmark >/dev/null || need+=(redis-tools); \
	command -v curl >/dev/null || need+=(curl); \
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || need+=(nginx); \
	test -e /usr/lib/nginx/modules/ngx_stream_module.so || { nginx -V 2>&1 | grep -q -- '--with-stream '; } \
	  || need+=(libnginx-mod-stream); \
	ldconfig -p | grep -q 'liblapack.so.3 ' || need+=(libopenblas0-serial))

# The tests drive Debian's Chromium (no browser download), run promtool and Prometheus (Debian's prometheus) and
# Airflow's scheduler on a PostgreSQL of their own (Debian's postgresql).
test-deps:
	$(call apt_install,command -v chromium >/dev/null || need+=(chromium); \
	command -v promtool >/dev/null || need+=(prometheus); \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql))

# The serving benchmark's load generator.
load-deps:
	$(call apt_install,command -v wrk >/dev/null || need+=(wrk))

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@echo "setup: installing pinned Python dependencies into $(VENV) with uv (first run: about 30 s)"
	@( $(PY) -m pip install -q -c constraints.txt uv && $(BIN)/uv pip install --python $(PY) -c constraints.txt -e ".[dev]" ) \
	  > $(VENV)/install.log 2>&1 || { tail -30 $(VENV)/install.log; echo "setup: install failed (log: $(VENV)/install.log)"; exit 1; }
	@touch $@

# Rebuilt with the venv (its jars); a failed build only warns: the JVMs start without it.
$(CLASS_ARCHIVE): $(STAMP)
	@echo "setup: archiving Spark's driver classes (about 35 s, once)"
	@$(PY) -m jobs.lib.runtime.class_archive

mlflow-deps: $(MLFLOW_STAMP)

$(MLFLOW_STAMP): conf/mlflow/constraints.txt
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(MLFLOW_VENV)
	@echo "setup: installing the MLflow tracking server into $(MLFLOW_VENV) (conf/mlflow/constraints.txt)"
	@$(MLFLOW_VENV)/bin/python -m pip install -q -c constraints.txt uv > $(MLFLOW_VENV)/install.log 2>&1 \
	  && $(MLFLOW_VENV)/bin/uv pip install --python $(MLFLOW_VENV)/bin/python -c conf/mlflow/constraints.txt mlflow \
	  >> $(MLFLOW_VENV)/install.log 2>&1 \
	  || { tail -30 $(MLFLOW_VENV)/install.log; echo "setup: installing mlflow failed (log: $(MLFLOW_VENV)/install.log)"; exit 1; }
	@touch $@

# The MLflow UI on 127.0.0.1:MLFLOW_PORT over the local store the runs record into (<data root>/mlflow).
mlflow: setup mlflow-deps
	@read -r uri artifacts <<< "$$($(PY) -m jobs.lib.tracking.connection)"; \
	case "$$uri" in sqlite:*) ;; *) echo "mlflow: tracking.uri is $$uri: open that server's UI instead" >&2; exit 1;; esac; \
	echo "mlflow: http://127.0.0.1:$(MLFLOW_PORT) over $$uri (Ctrl-C stops it)"; \
	exec $(MLFLOW_VENV)/bin/mlflow server --backend-store-uri "$$uri" --artifacts-destination "$$artifacts" \
	  --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

# Two workers: one for the modules that start JVMs and Airflow runs, one for those sharing the pipeline run.
# The class archive builds alongside (the CPUs are about 40% busy over the suite): JVMs map it once it is whole
# (it is renamed into place), and the one test of it waits for it.
test: system-deps $(STAMP) test-deps mlflow-deps
	@$(MAKE) --no-print-directory $(CLASS_ARCHIVE) & archive=$$!; \
	$(PY) -m pytest -q -n 2 --dist loadgroup; status=$$?; wait $$archive; exit $$status

test-fast: setup
	$(PY) -m pytest -q tests/unit

# Ingest archives the events waiting in the project-local Redis (the demo's), so it is started too.
pipeline: setup redis-up
	@export RECO_REDIS_URL="$${RECO_REDIS_URL:-$(REDIS_URL)}"; $(PY) -m jobs.pipeline $(if $(RUN_ID),--run-id $(RUN_ID))

redis-up: system-deps
	@mkdir -p -m 700 $(REDIS_DIR)
	@test -s $(REDIS_DIR)/password || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > $(REDIS_DIR)/password)
	@test -s $(REDIS_DIR)/events_token || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > $(REDIS_DIR)/events_token)
	@test -s $(REDIS_DIR)/service_password || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > $(REDIS_DIR)/service_password)
	@test -s $(REDIS_DIR)/speed_password || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > $(REDIS_DIR)/speed_password)
	@if REDISCLI_AUTH="$$(cat $(REDIS_DIR)/password)" redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
	  echo "redis: running on 127.0.0.1:$(REDIS_PORT) (data in .redis/)"; \
	  { echo "ACL SETUSER reco-service reset on >$$(cat $(REDIS_DIR)/service_password) $$(grep -v '^#' conf/redis/service-user.acl)"; \
	    echo "ACL SETUSER reco-speed reset on >$$(cat $(REDIS_DIR)/speed_password) $$(grep -v '^#' conf/redis/speed-user.acl)"; \
	    echo "CONFIG SET maxmemory $(REDIS_MAXMEMORY)"; echo "CONFIG SET maxmemory-policy noeviction"; } \
	    | REDISCLI_AUTH="$$(cat $(REDIS_DIR)/password)" redis-cli -p $(REDIS_PORT) >/dev/null; \
	else \
	  ( umask 077; { echo "requirepass $$(cat $(REDIS_DIR)/password)"; \
	    echo "user reco-service on >$$(cat $(REDIS_DIR)/service_password) $$(grep -v '^#' conf/redis/service-user.acl)"; \
	    echo "user reco-speed on >$$(cat $(REDIS_DIR)/speed_password) $$(grep -v '^#' conf/redis/speed-user.acl)"; \
	    echo "maxmemory $(REDIS_MAXMEMORY)"; echo "maxmemory-policy noeviction"; } > $(REDIS_DIR)/redis.conf ) && \
	  redis-server $(REDIS_DIR)/redis.conf --bind 127.0.0.1 --port $(REDIS_PORT) \
	    --dir $(REDIS_DIR) --appendonly yes --daemonize yes --pidfile $(REDIS_DIR)/redis.pid \
	    --logfile $(REDIS_DIR)/redis.log && \
	  for i in $$(seq 50); do REDISCLI_AUTH="$$(cat $(REDIS_DIR)/password)" redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done && \
	  echo "redis: started on 127.0.0.1:$(REDIS_PORT) (password in .redis/password, data in .redis/)"; \
	fi

redis-down:
	@if [ -f $(REDIS_DIR)/redis.pid ]; then kill $$(cat $(REDIS_DIR)/redis.pid) 2>/dev/null || true; rm -f $(REDIS_DIR)/redis.pid; echo "redis: stopped"; fi

# The demo's JVMs live for seconds on 100K ratings, where C2's compile threads cost more than they return: with
# C1 alone a second demo run was ready in 175 s against 190 s (production JVMs keep tiered compilation). Nobody
# opens the Spark UI of a 20-second job: not started. The JIT options are the suite's (tests/conftest.py says why
# the code cache keeps its tiered size).
DEMO_JVM_OPTS := $(shell cat conf/spark/short-lived-jvm.options) -Dspark.ui.enabled=false

# The first command of the README: set up, run the DAG once on MovieLens 100K, serve it. Ctrl-C stops it all.
demo: setup redis-up
	@set -e; t0=$$(date +%s); step() { echo "[demo $$(( $$(date +%s) - t0 ))s] $$*"; }; \
	user_redis="$${RECO_REDIS_URL:-}"; export RECO_REDIS_URL="$${user_redis:-$(REDIS_URL)}"; $(AIRFLOW_ENV); mkdir -p .airflow; \
	export SPARK_SUBMIT_OPTS="$${SPARK_SUBMIT_OPTS:-$(DEMO_JVM_OPTS)}"; \
	if [ .airflow/.migrated -nt $(STAMP) ]; then step "Airflow's database in .airflow/ is current"; else \
	  step "preparing Airflow in .airflow/ (airflow db migrate)"; \
	  airflow db migrate > .airflow/db-migrate.log 2>&1 && touch .airflow/.migrated; fi; \
	step "running the DAG once (airflow dags test) on $${RECO_MOVIELENS_DIR:-MovieLens 100K downloaded from GroupLens}; log: .airflow/demo-run.log"; \
	set +e; airflow dags test movielens_recommendations 2>&1 | tee .airflow/demo-run.log \
	  | grep --line-buffered -oE "\[DAG TEST\] (starting|end task) task_id=[a-z_]+" \
	  | sed -u -E 's/.*starting task_id=/started /; s/.*end task task_id=/finished /' \
	  | while read -r what task; do step "  $$what $$task"; done; \
	status=$${PIPESTATUS[0]}; set -e; \
	if [ "$$status" != 0 ]; then tail -25 .airflow/demo-run.log; echo "demo: the DAG run failed (above; whole log in .airflow/demo-run.log)"; \
	  kill $$(cat $(REDIS_DIR)/redis.pid) 2>/dev/null; rm -f $(REDIS_DIR)/redis.pid; exit 1; fi; \
	step "starting the lookup service on http://127.0.0.1:$(RECO_PORT) (nginx in front of gunicorn on :$(RECO_UPSTREAM_PORT))"; \
	$(FRONT); \
	RECO_REDIS_URL="$${user_redis:-$(SPEED_REDIS_URL)}" $(PY) -m serving.speed --metrics-port $(SPEED_METRICS_PORT) > .airflow/speed-layer.log 2>&1 & \
	speed=$$!; \
	trap '$(FRONT) --stop; kill $$speed 2>/dev/null; kill $$(cat $(REDIS_DIR)/redis.pid 2>/dev/null) 2>/dev/null; rm -f $(REDIS_DIR)/redis.pid; echo "demo: stopped the service, its front, the speed layer and Redis"' EXIT; \
	trap 'exit 130' INT TERM; \
	( for i in $$(seq 100); do curl -sf http://127.0.0.1:$(RECO_PORT)/readyz >/dev/null && break; sleep 0.2; done; \
	  for path in "/v1/users/196/recommendations?k=3" "/v1/movies/50/similar?k=3" "/v1/popular?genre=Comedy&k=3"; do \
	    echo; echo "\$$ curl 'http://127.0.0.1:$(RECO_PORT)$$path'"; curl -s "http://127.0.0.1:$(RECO_PORT)$$path"; echo; \
	  done; \
	  echo; echo "Send ratings and clicks back (token in .redis/events_token; the next run learns from them; sent again with"; \
	  echo "the same Idempotency-Key, a request gets its first answer and nothing is stored twice):"; \
	  echo "\$$ curl -X POST http://127.0.0.1:$(RECO_PORT)/v1/events -H \"Authorization: Bearer \$$(cat .redis/events_token)\" \\"; \
	  echo "    -H 'Idempotency-Key: user-5000-batch-1' -H 'Content-Type: application/json' \\"; \
	  echo "    -d '{\"events\": [{\"user_id\": 5000, \"movie_id\": 50, \"type\": \"rating\", \"rating\": 5}]}'"; \
	  echo "Within a second, user 5000's recommendations are folded in from that rating (\"source\": \"fold_in\"; the speed"; \
	  echo "layer's log: .airflow/speed-layer.log); \"type\": \"dismiss\" hides a movie from them for good."; \
	  echo; step "ready. Web page: http://127.0.0.1:$(RECO_PORT)/   API: http://127.0.0.1:$(RECO_PORT)/openapi.json   (Ctrl-C stops the service and Redis)" ) & \
	RECO_REDIS_URL="$${user_redis:-$(SERVICE_REDIS_URL)}" RECO_PORT=$(RECO_UPSTREAM_PORT) RECO_PAGE_EVENTS=true \
	  RECO_EVENTS_TOKEN="$${RECO_EVENTS_TOKEN:-$$(cat $(REDIS_DIR)/events_token)}" gunicorn -c serving/gunicorn.conf.py serving.wsgi:app 2> .airflow/serve.log

# The lookup service alone, against RECO_REDIS_URL (default: the project-local Redis of `make demo`): nginx on
# RECO_PORT in front of gunicorn on RECO_UPSTREAM_PORT. Ctrl-C stops both.
serve: setup
	@export RECO_REDIS_URL="$${RECO_REDIS_URL:-$(SERVICE_REDIS_URL)}"; \
	export RECO_EVENTS_TOKEN="$${RECO_EVENTS_TOKEN:-$$(cat $(REDIS_DIR)/events_token 2>/dev/null)}"; \
	$(FRONT) && trap '$(FRONT) --stop' EXIT && trap 'exit 130' INT TERM; \
	echo "serve: http://127.0.0.1:$(RECO_PORT) (nginx) -> gunicorn on 127.0.0.1:$(RECO_UPSTREAM_PORT)"; \
	RECO_PORT=$(RECO_UPSTREAM_PORT) gunicorn -c serving/gunicorn.conf.py serving.wsgi:app

# The speed layer alone, against RECO_REDIS_URL (default: the demo's Redis, as the speed layer's own user); its
# metrics on SPEED_METRICS_PORT. It reads the runs and the event archive under the data root. Ctrl-C stops it.
speed-layer: setup
	@export RECO_REDIS_URL="$${RECO_REDIS_URL:-$(SPEED_REDIS_URL)}"; \
	echo "speed-layer: folding events into the live version (metrics on 127.0.0.1:$(SPEED_METRICS_PORT))"; \
	exec $(PY) -m serving.speed --metrics-port $(SPEED_METRICS_PORT)

# The Airflow UI (airflow standalone) with this project's DAG on http://127.0.0.1:8080.
airflow: setup redis-up
	@export RECO_REDIS_URL="$${RECO_REDIS_URL:-$(REDIS_URL)}"; $(AIRFLOW_ENV); \
	export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=8080; exec airflow standalone

bench: bench-deployables bench-demo bench-pipeline bench-scale bench-serving bench-fresh bench-quality bench-experiment

bench-deployables: setup
	$(PY) -m benchmarks.bench_deployables

# From a clean state: a clone, no .venv, no caches (as root, the apt packages removed); stdlib Python only.
bench-demo:
	$(PYTHON_BOOT) -m benchmarks.bench_demo $(if $(KEEP_APT),--keep-apt)

bench-pipeline: setup
	$(PY) -m benchmarks.bench_pipeline

# SCALE=0.1m,1m (default), 10m, 25m, 32m, seed (1M people, 27,000 movies): synthetic data through the whole pipeline.
bench-scale: setup
	@$(PY) -m pip install -q "implicit==0.7.3" >/dev/null 2>&1 \
	  || { echo "bench-scale: pip install implicit==0.7.3 failed (the ALS it is measured against)" >&2; exit 1; }
	$(PY) -m benchmarks.bench_scale $(if $(SCALE),--sizes $(SCALE))

bench-serving: setup load-deps
	$(PY) -m benchmarks.bench_serving

bench-fresh: setup
	$(PY) -m benchmarks.bench_fresh

# ML-100K, then the tagged release where there is one (RECO_TAGGED_MOVIELENS_DIR: any CSV-layout folder).
bench-quality: setup
	$(PY) -m benchmarks.bench_quality

bench-experiment: setup
	$(PY) -m benchmarks.bench_experiment

# Implicit-ALS hyperparameter search on a pipeline run (RUN_ID, default: runs/latest); GRID='{"rank": [64]}'.
tune: setup
	@$(PY) jobs/tune.py --run-id $${RUN_ID:-$$(basename $$(readlink data/runs/latest))} $(if $(GRID),--grid '$(GRID)')

clean: redis-down
	rm -rf data .airflow .redis .nginx .pytest_cache
