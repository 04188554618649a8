"""The cluster path: a Spark standalone master and worker started from the installed pyspark on loopback, and
the clean and train jobs spark-submitted to spark://127.0.0.1:<port>."""
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from jobs import ingest
from jobs.lib.files import read_json
from jobs.lib.runs import run_paths
from tests.support import free_port, wait_until

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("spark-standalone")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    env = {**os.environ, "SPARK_LOG_DIR": str(logs), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, "PATH": f"{BIN}:{os.environ['PATH']}"}
    spark_class = str(BIN / "spark-class")
    master = subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)],
                              env=env, stdout=open(logs / "master.log", "w"), stderr=subprocess.STDOUT)
    url = f"spark://127.0.0.1:{port}"
    worker = subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                               "--cores", "2", "--memory", "3g", "--webui-port", str(worker_ui),
                               "--work-dir", str(logs / "work")],
                              env=env, stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT)

    def state():
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as response:
            return json.load(response)
    try:
        wait_until(lambda: state()["aliveworkers"] == 1, 90, 0.5, "a live standalone worker")
        yield url, state, env
    finally:
        for process in (worker, master):
            process.terminate()
            process.wait(30)


def test_clean_and_train_run_on_a_standalone_cluster(standalone_cluster, spark, make_config, tmp_path):
    url, state, env = standalone_cluster
    config = make_config(tmp_path / "data")
    ingest.run(config, "cluster", spark=spark)  # local; the cluster jobs read its output
    fast = tmp_path / "fast.yaml"
    fast.write_text("als:\n  implicit: {rank: 16, max_iter: 5}\n  explicit: {rank: 8, max_iter: 5}\n")
    job_env = {**env, "RECO_DATA_ROOT": str(tmp_path / "data"), "RECO_CONFIG": str(fast)}
    for job in ("clean", "train"):
        result = subprocess.run(
            [str(BIN / "spark-submit"), "--master", url, "--driver-memory", "1g", "--executor-memory", "2g",
             "--conf", "spark.ui.enabled=false", str(REPO / "jobs" / f"{job}.py"), "--run-id", "cluster"],
            env=job_env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    paths = run_paths(config, "cluster")
    assert read_json(paths.clean_report)["ratings_out"] == 100_000
    report = read_json(paths.train_report)
    assert report["counts"]["train"] + report["counts"]["test"] == 100_000
    assert (Path(paths.models) / "prod" / "implicit" / "metadata").is_dir()
    snapshot = state()
    finished = {app["name"] for app in snapshot["completedapps"] + snapshot["activeapps"]}
    assert {"reco-clean", "reco-train"} <= finished, snapshot  # they really ran on the cluster, not local[*]
