"""The Airflow DAG: integrity, cheap parsing, and a whole `airflow dags test` run on corrupted ML-100K that
validation stops while live keeps serving (a successful run under a real scheduler:
tests/dags/test_dag_under_scheduler.py)."""
import ast
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import redis_keys as rk
from tests.conftest import FAST_ALS
from tests.support import write_config

# These runs test the orchestration, not the model: small ALS, no explicit blend (ALS still beats popularity).
DAG_ALS = {**FAST_ALS, "als.implicit.rank": 32, "als.implicit.max_iter": 8, "als.explicit.rank": 8,
           "als.explicit.max_iter": 8, "als.explicit.implicit_feature": False}

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "movielens_recommendations"
EXPECTED_EDGES = {
    ("ingest", "validate"), ("ingest", "clean"), ("validate", "train"), ("clean", "train"),
    ("train", "evaluate"), ("evaluate", "gate"), ("gate", "recommend"), ("recommend", "publish"),
    ("publish", "smoke_check"), ("smoke_check", "cleanup"), ("cleanup", "report_run"),
    ("ingest", "experiment_running"), ("experiment_running", "experiment"), ("experiment", "publish"),
}


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, redis_server, ml100k_dir):
    home = tmp_path_factory.mktemp("airflow")
    fast = write_config(home / "fast.yaml", DAG_ALS)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ,
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
           "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[2]"}',
           "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable,
           "RECO_CONFIG": str(fast), "RECO_DATA_ROOT": str(home / "data"), "RECO_REDIS_URL": redis_server.url,
           "RECO_MOVIELENS_DIR": str(ml100k_dir), "RECO_DAG_RETRY_DELAY_S": "1"}
    migrate = subprocess.run([f"{bin_dir}/airflow", "db", "migrate"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    return env


def airflow(env, *args, timeout=900):
    return subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_dag_integrity(airflow_env, monkeypatch):
    for key, value in airflow_env.items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.get_dag(DAG_ID)
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == EXPECTED_EDGES
    assert all(t.retries >= 1 and t.retry_exponential_backoff and t.execution_timeout for t in dag.tasks)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert set(dag.params.keys()) == {"dataset", "movielens_dir", "download_base_url", "force", "release"}
    spark_tasks = [t for t in dag.tasks if t.task_type == "SparkJobOperator"]
    assert {t.task_id for t in spark_tasks} == {"ingest", "validate", "clean", "train", "evaluate", "recommend",
                                                "publish", "experiment"}
    assert dag.get_task("publish").trigger_rule == "none_failed"  # publishes when no experiment was judged


def test_dag_file_has_no_heavy_imports_at_top():
    """Airflow parses DAG files often: only the DAG file's functions may import project or data libraries."""
    tree = ast.parse((REPO / "dags" / "movielens_recommendations.py").read_text())
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            top_level.add((node.module or "").split(".")[0])
    heavy = {"pyspark", "pandas", "numpy", "pyarrow", "great_expectations", "redis", "jobs", "serving"}
    assert top_level & heavy == set()
    assert "airflow" in top_level
    # the one config loader is allowed (the DAG's settings go through it): pydantic and YAML, nothing heavier
    loaded = subprocess.run([sys.executable, "-c", "import sys, conf.settings; print(' '.join(sys.modules))"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert {name.split(".")[0] for name in loaded} & heavy == set()


def test_dag_run_on_corrupted_data_fails_at_validate_and_keeps_live(airflow_env, redis_server, ml100k_dir,
                                                                    tmp_path):
    client = redis_server.client()
    client.flushdb()
    client.set(rk.LIVE, "the-live-version")  # what must not move (a whole successful run: test_dag_under_scheduler)
    before = client.get(rk.LIVE)
    # A canary runs: the DAG judges it (no exposures yet: keep running) whatever validation says.
    client.zadd(rk.VERSIONS, {"candidate-under-test": 1.0})
    from jobs.lib.loop import experiment_control as experiments
    running = experiments.start(client, "candidate-under-test", 0.1, kind="canary")
    corrupted = tmp_path / "ml-100k"
    shutil.copytree(ml100k_dir, corrupted)
    lines = (corrupted / "u.data").read_text().splitlines()
    (corrupted / "u.data").write_text("\n".join(lines[:100] + ["1\t99999\t5\t881250949"] + lines[100:]) + "\n")
    env = {**airflow_env, "RECO_MOVIELENS_DIR": str(corrupted)}
    result = airflow(env, "dags", "test", DAG_ID)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "movie_in_catalog" in output  # the failed expectation is named in the task log
    assert "validate failed: 1 expectation(s) failed" in output  # the job's own message, relayed by spark-submit
    assert '"job": "validate"' in output  # the timing line the demo breakdown reads
    by_task = _last_run_task_states(env)
    assert by_task["ingest"] == "success" and by_task["validate"] == "failed"
    assert _try_number(env, "validate") == 1  # bad data is not retried (exit code 2)
    # clean runs beside validate; nothing that learns from the data runs after a failed validation
    assert all(by_task[t] in ("upstream_failed", None) for t in ("train", "recommend", "publish", "smoke_check"))
    assert client.get(rk.LIVE) == before
    assert by_task["report_run"] == "failed"  # it recorded the failure, then failed the run
    assert rk.decode(client.get(rk.LAST_RUN))["result"] == "failed"
    assert by_task["experiment_running"] == by_task["experiment"] == "success"
    assert experiments.current(client) == running  # judged "keep running": nothing applied
    experiments.end(client, "aborted", running["id"])
    client.zrem(rk.VERSIONS, "candidate-under-test")


def _try_number(env, task_id: str) -> int:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        return db.execute("SELECT try_number FROM task_instance WHERE dag_id = ? AND task_id = ? "
                          "ORDER BY start_date DESC LIMIT 1", (DAG_ID, task_id)).fetchone()[0]


def _last_run_task_states(env) -> dict:
    """Task states of the newest DAG run, from the Airflow metadata database of this test."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        (run_id,) = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                               (DAG_ID,)).fetchone()
        return dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                               (DAG_ID, run_id)).fetchall())
