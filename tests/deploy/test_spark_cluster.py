"""The cluster path: a Spark standalone master and two workers started from the installed pyspark on loopback,
with authentication on as compose runs them (conf/spark/spark-defaults.conf, the secret in _SPARK_AUTH_SECRET),
and the whole pipeline (ingest to publish, the all-in-one runner) spark-submitted to spark://127.0.0.1:<port>,
publishing into a real Redis; a driver without the secret is turned away."""
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks.synthetic_movielens import PRESETS, generate, scaled, write
from schemas import redis_keys as rk
from tests.conftest import JIT_OPTIONS
from tests.support import RedisServer, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKERS = 2
SECRET = "cluster-test-secret"


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """(master URL, a function returning the master's JSON state, env, the workers' work folders)."""
    logs = tmp_path_factory.mktemp("spark-standalone")
    port, ui = free_port(), free_port()
    env = {**os.environ, "SPARK_LOG_DIR": str(logs), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, "PATH": f"{BIN}:{os.environ['PATH']}",
           "SPARK_DAEMON_JAVA_OPTS": JIT_OPTIONS,  # the master and workers (conftest.JIT_OPTIONS)
           "SPARK_CONF_DIR": str(REPO / "conf" / "spark"), "_SPARK_AUTH_SECRET": SECRET}
    spark_class = str(BIN / "spark-class")
    processes = [subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                   "--port", str(port), "--webui-port", str(ui)],
                                  env=env, stdout=open(logs / "master.log", "w"), stderr=subprocess.STDOUT)]
    url = f"spark://127.0.0.1:{port}"
    work_dirs = [logs / f"worker-{i}" for i in range(WORKERS)]
    for i, work_dir in enumerate(work_dirs):  # one core each: the machine's two cores, as two machines would
        processes.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1",
             "--memory", "1536m", "--webui-port", str(free_port()), "--work-dir", str(work_dir)],
            env=env, stdout=open(logs / f"worker-{i}.log", "w"), stderr=subprocess.STDOUT))

    def state():
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as response:
            return json.load(response)
    try:
        wait_until(lambda: state()["aliveworkers"] == WORKERS, 90, 0.5, f"{WORKERS} live standalone workers")
        yield url, state, env, work_dirs
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(30)


def test_whole_pipeline_runs_on_a_two_worker_standalone_cluster(standalone_cluster, tmp_path):
    url, state, env, work_dirs = standalone_cluster
    redis_server = RedisServer(tmp_path / "redis").start()
    # A small MovieLens-shaped release (a fifth of ML-100K's shape): the cluster path, not the data, is tested.
    release = tmp_path / "movielens"
    write(release, "100k", *generate(scaled(PRESETS["ml-100k"], 0.2), seed=11))
    # The cluster path, not the model: small ALS without the explicit blend, no quality gate; the lists scored on
    # the workers too.
    settings = tmp_path / "cluster-test.yaml"
    settings.write_text("als:\n  implicit: {rank: 16, reg_param: 0.5, alpha: 10.0, max_iter: 5}\n"
                        "  explicit: {rank: 8, max_iter: 5, implicit_feature: false}\nspark:\n  shuffle_partitions: 2\n"
                        "gates:\n  min_ndcg_lift_over_popularity: -1.0\n"
                        "recommend:\n  driver_max_scores: 0\n")
    job_env = {**env, "RECO_DATA_ROOT": str(tmp_path / "data"), "RECO_CONFIG": str(settings),
               "RECO_MOVIELENS_DIR": str(release), "RECO_REDIS_URL": redis_server.url}
    try:
        result = subprocess.run(
            [str(BIN / "spark-submit"), "--master", url, "--driver-memory", "1g", "--executor-memory", "1g",
             "--conf", "spark.ui.enabled=false", "--conf", f"spark.executor.extraJavaOptions={JIT_OPTIONS}",
             str(REPO / "jobs" / "pipeline.py"), "--run-id", "cluster", "--publish"],
            env=job_env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        client = redis_server.client()
        live = client.get(rk.LIVE).decode()
        meta = json.loads(client.get(rk.key(live, "meta")))
    finally:
        redis_server.stop()

    run = tmp_path / "data" / "runs" / "cluster"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["publishable"], metrics["gates"]
    people = len(pq.read_table(run / "clean" / "ratings.parquet", columns=["user_id"]).column(0).unique())
    assert meta["run_id"] == "cluster" and meta["counts"]["user"] == people > 100, meta
    assert json.loads((run / "publish.json").read_text())["version"] == live
    assert json.loads((run / "recommend" / "report.json").read_text())["on_driver"] == {
        "user_recs": False, "item_neighbors": False}
    snapshot = state()
    apps = [app for app in snapshot["completedapps"] + snapshot["activeapps"] if app["name"] == "reco-pipeline"]
    assert len(apps) == 1, snapshot  # it really ran on the cluster, not local[*]
    # Both workers ran executors of it: each keeps a folder per application it served.
    assert all((work_dir / apps[0]["id"]).is_dir() for work_dir in work_dirs), \
        [sorted(p.name for p in w.iterdir()) if w.is_dir() else None for w in work_dirs]


def test_a_driver_without_the_secret_is_turned_away(standalone_cluster, tmp_path):
    """A driver with another secret (through the project's own session factory) fails the master's SASL
    handshake and never becomes an application."""
    url, state, env, _ = standalone_cluster
    script = tmp_path / "intruder.py"
    script.write_text("from conf.settings import load_config\nfrom jobs.lib.runtime.spark import spark_session\n"
                      "spark_session(load_config(), 'intruder').range(1).count()\n")
    intruder = subprocess.Popen(
        [str(BIN / "spark-submit"), "--master", url, "--conf", "spark.ui.enabled=false", str(script)],
        env={**env, "_SPARK_AUTH_SECRET": "a-guess"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    refused = False
    try:
        for line in intruder.stdout:  # the driver retries for a minute; the first refusal is enough
            if "SaslException" in line:
                refused = True
                break
    finally:
        intruder.kill()
        intruder.wait(30)
    assert refused
    apps = state()["activeapps"] + state()["completedapps"]
    assert not any(app["name"] == "reco-intruder" for app in apps)
