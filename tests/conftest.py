"""Session fixtures: one SparkSession (local[2]), one real redis-server, and one pipeline run on MovieLens 100K
that the integration tests share."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from conf.settings import load_config
from tests.support import RedisServer

REPO = Path(__file__).resolve().parent.parent

# Small-but-real model settings so the suite stays fast; production settings live in conf/local.yaml.
FAST_ALS = {
    "als.implicit.rank": 64, "als.implicit.reg_param": 0.5, "als.implicit.alpha": 10.0,
    "als.implicit.max_iter": 10, "als.explicit.rank": 10, "als.explicit.max_iter": 10,
    "spark.shuffle_partitions": 2,
}


# The suite's JVMs live for seconds to a minute on 100K ratings, where C2's compile threads cost more than they
# return: with C1 alone each job used 20-40% less CPU and no more wall time (ingest, train, evaluate and
# recommend measured). spark-submit, and so every driver the suite starts, reads this variable. The options are
# the demo's too (the Makefile's DEMO_JVM_OPTS); production JVMs keep the default tiered compilation. C1 alone
# would shrink the JIT's code cache to 48 MB, which one pipeline run on 100K ratings nearly fills (47.5 MB) and a
# suite's JVM outgrows (74 MB by its end, measured with jcmd Compiler.codecache): a full cache fails the next
# query with "Out of space in CodeCache for adapters". Hence the tiered default's 240 MB beside C1.
JIT_OPTIONS = (REPO / "conf" / "spark" / "short-lived-jvm.options").read_text().strip()
os.environ.setdefault("SPARK_SUBMIT_OPTS", JIT_OPTIONS)

# MovieLens folders are read only under data.movielens_roots: the shared copy's folder, and the temporary folders
# where tests write layouts of their own (every job and DAG run the suite starts inherits this).
_roots = [os.environ.get("RECO_MOVIELENS_ROOTS", ""), str(Path(tempfile.gettempdir()).resolve())]
if os.environ.get("RECO_MOVIELENS_DIR"):
    _roots.append(str(Path(os.environ["RECO_MOVIELENS_DIR"]).resolve().parent))
os.environ["RECO_MOVIELENS_ROOTS"] = ",".join(root for root in _roots if root)

SERVICE_EVENTS_TOKEN = "service-events-token"  # the `service` fixture's intake token

# `make test` runs two pytest-xdist workers (--dist loadgroup): the modules that start their own JVMs and
# processes (Airflow DAG runs, a standalone cluster) on one, the modules sharing the session's pipeline run on
# the other, so that run is computed once; the rest goes to whichever is free.
XDIST_GROUPS = {"test_dag_under_scheduler": "processes", "test_spark_cluster": "processes",
                **{name: "pipeline" for name in (
                    "test_openapi_contract", "test_drift_gate", "test_intake", "test_experiment", "test_loop",
                    "test_monitoring", "test_pipeline", "test_publish", "test_redis_cluster", "test_api",
                    "test_web_page", "test_publication_faults", "test_front", "test_flood", "test_fold_in",
                    "test_speed_layer", "test_filters", "test_new_movies", "test_tracking")}}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the marks to group the tests
def pytest_collection_modifyitems(items):
    for item in items:
        group = XDIST_GROUPS.get(item.module.__name__.rsplit(".", 1)[-1])
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def release_folder(variable: str, marker: str, what: str, beside: str) -> Path:
    """The MovieLens folder the environment names (`make test` sets it); every test that needs it fails saying so."""
    folder = os.environ.get(variable)
    if not folder or not (Path(folder) / marker).is_file():
        # A failure, not pytest.exit: under xdist a worker's exit is reported as a crash and its message is lost.
        pytest.fail(f"{variable} must name {what} (make test sets it to ../shared/data/{beside})", pytrace=False)
    return Path(folder)


@pytest.fixture(scope="session", autouse=True)
def spark_local_dirs(tmp_path_factory):
    """Every JVM the suite starts (its own session, the jobs and DAG runs it spawns) keeps its scratch folders
    (Spark's local dirs, the JVM's temporary folder, MLflow's Spark scratch) under pytest's temporary folder,
    which pytest prunes: a JVM the tests SIGKILL leaves them behind."""
    folder = tmp_path_factory.mktemp("spark-local")
    os.environ["SPARK_LOCAL_DIRS"] = str(folder)
    os.environ["SPARK_SUBMIT_OPTS"] = f"{os.environ.get('SPARK_SUBMIT_OPTS', '')} -Djava.io.tmpdir={folder}".strip()
    os.environ["MLFLOW_DFS_TMP"] = str(folder / "mlflow")  # MLflow's Spark flavor's scratch, /tmp/mlflow by default


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    return release_folder("RECO_MOVIELENS_DIR", "u.data", "a MovieLens 100K folder", "ml-100k")


@pytest.fixture(scope="session")
def tagged_release_dir() -> Path:
    """The tagged CSV release beside the project (ml-latest-small, 2016 edition)."""
    return release_folder("RECO_TAGGED_MOVIELENS_DIR", "tags.csv", "a tagged MovieLens CSV release",
                          "ml-latest-small-2016")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def make_config(tmp_path_factory, ml100k_dir):
    """Build a validated Config for a test: a fresh data root unless given, fast ALS, extra dotted overrides."""
    def build(data_root: Path | None = None, **overrides):
        # Event archiving reads Redis: on where a test gives a redis.url and asks for it.
        values = {"data.root": str(data_root or tmp_path_factory.mktemp("data")),
                  "data.movielens_dir": str(ml100k_dir), "events.archive": False,
                  # MLflow on where a test asks for it (the shared run, tests/jobs/test_tracking.py, the DAGs)
                  "tracking.enabled": False, **FAST_ALS}
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config(REPO / "conf" / "local.yaml", overrides=values)
    return build


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] session for every test; needs no MovieLens copy (unit tests run without one)."""
    from jobs.lib.runtime.spark import spark_session
    config = load_config(REPO / "conf" / "local.yaml", overrides={
        "data.root": str(tmp_path_factory.mktemp("spark")), "spark.shuffle_partitions": 2,
        "spark.extra": {"spark.ui.enabled": "false"}})
    session = spark_session(config, "tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def pipeline_run(spark, make_config, redis_server):
    """The whole batch pipeline once on MovieLens 100K: (config, run_id, paths)."""
    from jobs.lib.runtime.run_layout import run_paths
    from jobs.pipeline import run_pipeline
    config = make_config(redis__url=redis_server.url, events__archive=True, tracking__enabled=True)
    run_id = "it_ml100k"
    seconds = run_pipeline(config, run_id, spark=spark)  # recorded in MLflow's store under its data root
    # The tests that publish it again do not record each publication (test_tracking.py turns it back on).
    config = config.model_copy(update={"tracking": config.tracking.model_copy(update={"enabled": False})})
    return config, run_id, run_paths(config, run_id), seconds


@pytest.fixture(scope="session")
def service(pipeline_run, spark, tmp_path_factory):
    """The real lookup service under gunicorn on a free loopback port, answering from the pipeline run published
    into a Redis of its own (other tests flush theirs): (base URL, config, published version)."""
    from jobs import publish
    from tests.support import GunicornService
    config, run_id, _, _ = pipeline_run
    server = RedisServer(tmp_path_factory.mktemp("service-redis")).start()
    config = config.model_copy(update={"redis": config.redis.model_copy(update={"url": server.url})})
    version = publish.run(config, run_id, spark=spark)["version"]
    gunicorn = GunicornService(server.url, tmp_path_factory.mktemp("service"),
                               env={"RECO_EVENTS_TOKEN": SERVICE_EVENTS_TOKEN, "RECO_PAGE_EVENTS": "true"}).start()
    yield gunicorn.base_url, config, version
    gunicorn.stop()
    server.stop()
