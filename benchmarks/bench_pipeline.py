"""Pipeline benchmark: each job of the batch chain on MovieLens 100K as its own spark-submit (as Airflow runs
them), with the production settings (conf/settings.py); wall time and peak memory (RSS of the whole process tree:
the driver JVM, the Python driver and the Python workers; see tree_rss), sampled every 50 ms.
Writes benchmarks/results/pipeline.json and pipeline.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks.harness import RedisServer
from benchmarks.report import done_with, scratch_folder, write

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JOBS = ("ingest", "validate", "clean", "train", "evaluate", "recommend", "publish")


# A child this young is left out of the sum: between fork and exec it reports its parent's pages as its own. A
# 3 GB Python process starting 300 children read 3 GB in 10 of 2,119 samples of them; once, the JVM starting
# its Python workers put the 32M train job's peak at 14.2 GiB, against 9.1 GiB sampled again without it.
SPAWNING_S = 0.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in `root` and its descendants, children younger than SPAWNING_S left out."""
    total = 0
    for process in (root, *root.children(recursive=True)):
        try:
            if process is root or _age_s(process.pid) >= SPAWNING_S:
                total += process.memory_info().rss
        except (psutil.Error, OSError):  # gone meanwhile
            pass
    return total


def _age_s(pid: int) -> float:
    """Seconds since the process started, to the clock tick (Linux). psutil's create_time adds the boot time
    in whole seconds, up to a second off against time.time()."""
    with open("/proc/uptime") as uptime, open(f"/proc/{pid}/stat") as stat:
        started = int(stat.read().rsplit(")", 1)[1].split()[19]) / CLOCK_TICKS  # field 22, starttime
        return float(uptime.read().split()[0]) - started


def measure(command: list[str], env: dict) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, tree_rss(root))
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
