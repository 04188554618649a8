"""The DAG as it runs in production: a real scheduler with the LocalExecutor, the api-server and the
dag-processor, on a real PostgreSQL (the metadata database Airflow documents for production), started on
loopback by the test. The nightly run learns from the events waiting in the stream and publishes. A backfill of an
older date on corrupted data then stops at validate (not retried) while live keeps serving, and the canary that
runs meanwhile is judged all the same. (A backfill of good older data is held at publish: the live version is
newer; tests/jobs/test_publication_faults.py.)

The data is a small MovieLens-shaped synthetic release, so that the runs under a scheduler (a task process and a
spark-submit per task) fit the suite's time."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from benchmarks.synthetic_movielens import PRESETS, generate, scaled, write
from schemas import redis_keys as rk
from schemas.events import to_stream_fields
from serving.app import create_app
from tests.conftest import FAST_ALS
from tests.dags.test_dag import DAG_ID
from tests.support import REPO, RedisServer, free_port, wait_until, write_config

BIN = Path(sys.executable).parent
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
NEWCOMER = 900_300
REDIS_PASSWORD = "scheduler-test-redis-password-7f3a"  # must appear nowhere Airflow stores or shows
RATED = (1, 2, 3, 4, 5)
# The orchestration is under test, not the model: small ALS, no explicit blend.
DAG_ALS = {**FAST_ALS, "als.implicit.rank": 16, "als.implicit.max_iter": 5, "als.explicit.rank": 8,
           "als.explicit.max_iter": 5, "als.explicit.implicit_feature": False}


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster of its own on a free loopback port, run as the `postgres` user (it refuses root)."""
    assert PG_BIN, "PostgreSQL is not installed (make test installs Debian's postgresql)"
    folder = Path(tempfile.mkdtemp(prefix="reco-postgres-"))  # pytest's own folders are closed to other users
    shutil.chown(folder, "postgres")
    port, data = free_port(), folder / "data"

    def as_postgres(*args):
        subprocess.run(["runuser", "-u", "postgres", "--", *map(str, args)], check=True, capture_output=True,
                       timeout=120)
    as_postgres(PG_BIN / "initdb", "-D", data, "-A", "trust", "-U", "airflow")
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "start", "-o",
                f"-p {port} -k {folder} -c listen_addresses=127.0.0.1")
    try:
        as_postgres(PG_BIN / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "airflow", "airflow")
        yield f"airflow@127.0.0.1:{port}/airflow"
    finally:
        as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory, postgres):
    home = tmp_path_factory.mktemp("airflow-scheduler")
    redis = RedisServer(home / "redis", password=REDIS_PASSWORD).start()
    shape = scaled(PRESETS["ml-100k"], 0.2)
    write(home / "movielens", "100k", *generate(shape, seed=7))
    # the orchestration under test, not the model: synthetic tastes need not let ALS beat popularity
    write_config(home / "fast.yaml", {**DAG_ALS, "gates.min_ndcg_lift_over_popularity": -1.0})
    api_port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://{postgres}",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"postgresql+psycopg_async://{postgres}",
           # every component signs and checks the task workers' tokens with the same secret
           "AIRFLOW__API_AUTH__JWT_SECRET": "scheduler-test-secret",
           "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(api_port),
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
           "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[2]"}',
           "PATH": f"{BIN}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable,
           "RECO_CONFIG": str(home / "fast.yaml"), "RECO_DATA_ROOT": str(home / "data"),
           "RECO_REDIS_URL": redis.url, "RECO_MOVIELENS_DIR": str(home / "movielens"), "RECO_DAG_RETRY_DELAY_S": "1"}
    migrate = airflow(env, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    # each in a session of its own, so that teardown also ends what they start (the scheduler's log server)
    processes = [subprocess.Popen([str(BIN / "airflow"), component], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
                 for component in ("api-server", "scheduler", "dag-processor")
                 for log in [open(home / f"{component}.log", "w")]]
    try:
        with psycopg.connect(f"postgresql://{postgres}", autocommit=True) as database:
            wait_until(lambda: database.execute("SELECT 1 FROM serialized_dag WHERE dag_id = %s",
                                                (DAG_ID,)).fetchone(),
                       timeout=180, interval=1, what="the dag-processor to parse the DAG")
            yield env, redis, database, lambda: as_postgres_output(
                PG_BIN / "pg_dump", "-h", "127.0.0.1", "-p", postgres.rsplit(":", 1)[1].split("/")[0], "-U",
                "airflow", "airflow")
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left
            except ProcessLookupError:
                pass
        redis.stop()


def as_postgres_output(*args) -> str:
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, args)], check=True, capture_output=True,
                          text=True, timeout=120).stdout


def airflow(env, *args, timeout=300):
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def dag_runs(database) -> list[dict]:
    """The DAG's runs as the scheduler recorded them (read from its database: an `airflow` CLI call per poll
    costs seconds of CPU that the runs under test need)."""
    rows = database.execute("SELECT run_id, state, logical_date FROM dag_run WHERE dag_id = %s", (DAG_ID,))
    return [{"run_id": run_id, "state": state, "logical_date": logical_date.isoformat() if logical_date else ""}
            for run_id, state, logical_date in rows.fetchall()]


def finished(env, database, pick) -> dict:
    """Wait for the DAG run `pick` chooses to end; fail with the scheduler's log if it does not."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        run = next((r for r in dag_runs(database) if pick(r)), None)
        if run and run["state"] in ("success", "failed"):
            return run
        time.sleep(1)
    raise AssertionError(f"no finished run after 15 minutes: {dag_runs(database)}; {_tail(env)}")


def task_instances(database, run_id: str) -> dict[str, tuple[str | None, int]]:
    """{task: (state, try number)} of one DAG run."""
    rows = database.execute("SELECT task_id, state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s",
                            (DAG_ID, run_id))
    return {task: (state, tries) for task, state, tries in rows.fetchall()}


def mlflow_store(env):
    from mlflow import MlflowClient
    uri = f"sqlite:///{env['RECO_DATA_ROOT']}/mlflow/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def mlflow_runs(env) -> dict:
    """{Airflow run id: MLflow run} of the store the DAG's tasks recorded into."""
    store = mlflow_store(env)
    experiment = store.get_experiment_by_name("movielens-recommendations")
    return {run.data.tags.get("airflow.run_id"): run for run in store.search_runs([experiment.experiment_id])}


def _tail(env) -> str:
    return (Path(env["AIRFLOW_HOME"]) / "scheduler.log").read_text()[-3000:]


def test_the_nightly_run_publishes_and_a_corrupted_backfill_stops_at_validate(scheduler):
    env, redis, database, dump_database = scheduler
    client = redis.client()
    for movie in RATED:  # waiting in the stream, as the service's intake writes them
        client.xadd(rk.EVENTS, to_stream_fields({"user_id": NEWCOMER, "movie_id": movie, "type": "rating",
                                                 "rating": 5.0, "ts": 1_700_000_000}))
    unpaused = airflow(env, "dags", "unpause", DAG_ID)  # the scheduler creates the latest interval's run
    assert unpaused.returncode == 0, unpaused.stderr[-2000:]
    nightly = finished(env, database, lambda run: run["run_id"].startswith("scheduled__"))
    assert nightly["state"] == "success", (nightly, _tail(env))
    live = client.get(rk.LIVE).decode()
    from conf.settings import load_config
    config = load_config(env["RECO_CONFIG"], overrides={"redis.url": redis.url})
    app = create_app(config).test_client()
    newcomer = app.get(f"/v1/users/{NEWCOMER}/recommendations?k=10").get_json()
    assert newcomer["version"] == live and "fallback" not in newcomer and len(newcomer["items"]) == 10
    assert not set(RATED) & {i["movie_id"] for i in newcomer["items"]}
    assert client.xlen(rk.EVENTS) == 0  # archived, then trimmed
    last_run = rk.decode(client.get(rk.LAST_RUN))
    cleaned = json.loads(next((Path(env["RECO_DATA_ROOT"]) / "runs").glob("scheduled*/clean/report.json")).read_text())
    assert cleaned["events"]["ratings_kept"] == len(RATED)  # learnt from the events waiting in the stream
    assert last_run["result"] == "success" and last_run["rows"]["clean_ratings"] == cleaned["ratings_out"]
    assert rk.decode(client.get(rk.key(live, "meta")))["data_as_of"].startswith(nightly["logical_date"][:10])
    # MLflow (the local store under the data root): the run under its Airflow ids, the live version's model
    tracked = mlflow_runs(env)[nightly["run_id"]]
    assert tracked.data.tags["reco.result"] == "success" and tracked.info.status == "FINISHED"
    assert tracked.data.tags["airflow.logical_date"][:10] == nightly["logical_date"][:10]
    assert tracked.data.tags["reco.version"] == live and "models.als.ndcg_at_10" in tracked.data.metrics
    assert mlflow_store(env).get_model_version_by_alias("movielens-als", "live").tags["reco.version"] == live

    # A canary runs (no exposures yet: the judgement keeps it running); then a backfill of an older date whose
    # data names a movie the catalogue lacks.
    from jobs.lib.loop import experiment_control as experiments
    client.zadd(rk.VERSIONS, {"candidate-under-test": 1.0})
    running = experiments.start(client, "candidate-under-test", 0.1, kind="canary")
    corrupted = Path(env["AIRFLOW_HOME"]) / "corrupted"
    shutil.copytree(env["RECO_MOVIELENS_DIR"], corrupted)
    lines = (corrupted / "u.data").read_text().splitlines()
    (corrupted / "u.data").write_text("\n".join(lines[:100] + ["1\t99999\t5\t881250949"] + lines[100:]) + "\n")
    backfill = airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", "2026-11-01",
                       "--to-date", "2026-11-01", "--dag-run-conf", json.dumps({"movielens_dir": str(corrupted)}))
    assert backfill.returncode == 0, (backfill.stdout + backfill.stderr)[-2000:]
    older = finished(env, database, lambda run: run["run_id"].startswith("backfill__"))
    assert older["state"] == "failed" and older["logical_date"].startswith("2026-11-01")
    tasks = task_instances(database, older["run_id"])
    assert tasks["ingest"][0] == "success" and tasks["validate"] == ("failed", 1)  # bad data is not retried
    # clean runs beside validate; nothing that learns from the data runs after a failed validation
    assert all(tasks[t][0] in ("upstream_failed", None) for t in ("train", "recommend", "publish", "smoke_check"))
    assert tasks["experiment_running"][0] == tasks["experiment"][0] == "success"
    assert experiments.current(client) == running  # judged "keep running": nothing applied
    assert tasks["report_run"][0] == "failed"  # it recorded the failure, then failed the run
    assert rk.decode(client.get(rk.LAST_RUN))["result"] == "failed"
    failed_run = mlflow_runs(env)[older["run_id"]]
    assert failed_run.data.tags["reco.result"] == "failed" and failed_run.info.status == "FAILED"
    assert client.get(rk.LIVE).decode() == live
    validate_log = "".join(p.read_text(errors="replace") for p in (Path(env["AIRFLOW_HOME"]) / "logs").rglob("*")
                           if p.is_file() and "backfill__" in str(p) and "task_id=validate" in str(p))
    assert "movie_in_catalog" in validate_log  # the failed expectation is named in the task log
    assert "validate failed: 1 expectation(s) failed" in validate_log  # the job's own message, via spark-submit
    # The jobs read Redis's password from the workers' environment at run time: Airflow's database (serialized
    # DAG, rendered template fields, XComs) and the task logs never hold it.
    assert REDIS_PASSWORD not in dump_database()
    logs = [p for p in (Path(env["AIRFLOW_HOME"]) / "logs").rglob("*") if p.is_file()]
    assert logs and not [p for p in logs if REDIS_PASSWORD in p.read_text(errors="replace")]
