"""Pipeline benchmark: each job of the batch chain on MovieLens 100K as its own spark-submit (as Airflow runs
them), with conf/local.yaml's production settings; wall time and peak memory (RSS of the whole process tree:
the driver JVM, the Python driver and the Python workers), sampled every 50 ms.
Writes benchmarks/results/pipeline.json and pipeline.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks.report import done_with, scratch_folder, write
from tests.support import RedisServer

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JOBS = ("ingest", "validate", "clean", "train", "evaluate", "recommend", "publish")


def measure(command: list[str], env: dict) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{command[-3]} failed:\n{process.stderr.read()[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak / 2**20)}


def main() -> None:
    if not os.environ.get("RECO_MOVIELENS_DIR"):
        raise SystemExit("set RECO_MOVIELENS_DIR to a MovieLens 100K folder (make bench-pipeline does)")
    work = scratch_folder("bench-pipeline")
    redis_server = RedisServer(work / "redis").start()
    env = {**os.environ, "RECO_DATA_ROOT": str(work / "data"), "RECO_REDIS_URL": redis_server.url,
           "PYSPARK_PYTHON": sys.executable, "PATH": f"{BIN}:{os.environ['PATH']}"}
    results = {}
    try:
        for job in JOBS:
            results[job] = measure([str(BIN / "spark-submit"), "--master", "local[2]", "--driver-memory", "4g",
                                    str(REPO / "jobs" / f"{job}.py"), "--run-id", "bench"], env)
            print(job, results[job], flush=True)
    finally:
        redis_server.stop()
    import json
    metrics = json.loads((work / "data" / "runs" / "bench" / "metrics.json").read_text())
    total = round(sum(r["seconds"] for r in results.values()), 1)
    payload = {"dataset": "ml-100k", "jobs": results, "total_seconds": total,
               "peak_rss_mib": max(r["peak_rss_mib"] for r in results.values()),
               "ndcg@10": metrics["models"]["als"]["ndcg@10"], "params": metrics["params"]["implicit"]}
    rows = [(job, r["seconds"], r["peak_rss_mib"]) for job, r in results.items()] + [("total", total, "")]
    write("pipeline", payload, rows, ("job (spark-submit, local[2])", "wall s", "peak RSS MiB"),
          f"ML-100K, conf/local.yaml (implicit rank {metrics['params']['implicit']['rank']}); each job's time "
          f"includes its JVM start (~3-5 s). ALS NDCG@10 of this run: {metrics['models']['als']['ndcg@10']:.4f}. "
          "Command: make bench-pipeline")
    done_with(work)


if __name__ == "__main__":
    main()
