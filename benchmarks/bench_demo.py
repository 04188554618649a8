"""Demo benchmark: what `make demo` runs, timed and taken apart. `airflow db migrate`, then one whole DAG run
(`airflow dags test`) on MovieLens 100K into a real redis-server, then the service until it is ready; each
task's time split into Airflow's own overhead, spark-submit's JVM start, Python imports, the Spark session,
Great Expectations' context (validate) and the work itself, from the task log and each job's `timing` line.
Writes benchmarks/results/demo.json and demo.md.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness import GunicornService, RedisServer
from benchmarks.report import done_with, scratch_folder, write

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAG_ID = "movielens_recommendations"
DAG_TEST_ARGS = os.environ.get("DAG_TEST_ARGS", "").split()
STAMP = r"^(\d{4}-\d\d-\d\dT[\d:.]+)Z"


def airflow_env(home: Path, redis_url: str) -> dict:
    return {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[2]"}',
            "PATH": f"{BIN}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable,
            "RECO_DATA_ROOT": str(home / "data"), "RECO_REDIS_URL": redis_url}


def _epoch(stamp: str) -> float:
    """ISO 8601 in UTC, with a Z, an offset or neither."""
    moment = datetime.fromisoformat(stamp.removesuffix("Z"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def breakdown(log_text: str) -> dict[str, dict]:
    """Per task, seconds from the `airflow dags test` log (timestamps of its own lines and of the jobs')."""
    tasks: dict[str, dict] = {}
    current = None
    for line in log_text.splitlines():
        stamp = re.match(STAMP, line)
        if not stamp:
            continue
        at = _epoch(stamp.group(1))
        if m := re.search(r"\[DAG TEST\] starting task_id=(\w+)", line):
            current = tasks.setdefault(m.group(1), {"start": at})
        elif m := re.search(r"\[DAG TEST\] end task task_id=(\w+)", line):
            tasks[m.group(1)]["end"] = at
        elif current is not None and "Spark-Submit cmd:" in line:
            current["submitted"] = at
        elif current is not None and (m := re.search(r"spark session ready in ([\d.]+) s", line)):
            current["spark_session_s"] = float(m.group(1))
        elif current is not None and (m := re.search(r"great expectations context ready in ([\d.]+) s", line)):
            current["gx_context_s"] = float(m.group(1))
        elif current is not None and (m := re.search(r"timing (\{.*?\})", line)):
            current["timing"] = json.loads(m.group(1).replace('\\"', '"'))
    rows = {}
    for name, t in tasks.items():
        total = t["end"] - t["start"]
        row = {"total_s": round(total, 2)}
        timing = t.get("timing")
        if "submitted" in t and timing and timing.get("python_started"):
            python_started = _epoch(timing["python_started"])
            job_done = _epoch(timing["job_done"])
            session = t.get("spark_session_s", 0.0)
            gx = t.get("gx_context_s", 0.0)
            row.update({
                "airflow_s": round((t["submitted"] - t["start"]) + (t["end"] - job_done), 2),
                "jvm_start_s": round(python_started - t["submitted"], 2),
                "imports_s": timing["imports_s"], "spark_session_s": round(session, 2),
                "gx_context_s": round(gx, 2), "work_s": round(timing["job_s"] - session - gx, 2)})
        rows[name] = row
    return rows


def main() -> None:
    # Like `make demo`: RECO_MOVIELENS_DIR when set (the Makefile sets it to ../shared), else the download.
    work = scratch_folder("bench-demo")
    home = work / "airflow"
    home.mkdir()
    redis_server = RedisServer(work / "redis").start()
    env = airflow_env(home, redis_server.url)
    phases = {}
    try:
        started = time.perf_counter()
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        phases["airflow db migrate"] = time.perf_counter() - started
        started = time.perf_counter()
        run = subprocess.run([str(BIN / "airflow"), "dags", "test", *DAG_TEST_ARGS, DAG_ID], env=env,
                             capture_output=True, text=True)
        phases["airflow dags test (the DAG run)"] = time.perf_counter() - started
        (work / "dag-run.log").write_text(run.stdout + run.stderr)
        if run.returncode != 0:
            raise SystemExit(f"the DAG run failed; log: {work / 'dag-run.log'}")
        started = time.perf_counter()
        service = GunicornService(redis_server.url, work).start()
        phases["service ready (gunicorn)"] = time.perf_counter() - started
        service.stop()
    finally:
        redis_server.stop()
    tasks = breakdown(run.stdout + run.stderr)
    total = sum(phases.values())
    columns = ("total_s", "airflow_s", "jvm_start_s", "imports_s", "spark_session_s", "gx_context_s", "work_s")
    rows = [(name, *(f"{t[c]:.1f}" if c in t else "" for c in columns)) for name, t in tasks.items()]
    rows.append(("**DAG run, all tasks**", f"{phases['airflow dags test (the DAG run)']:.1f}", *[
        f"{sum(t.get(c, 0) for t in tasks.values()):.1f}" for c in columns[1:]]))
    notes = ("Phases of `make demo` after setup: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
             + f"; **{total:.0f} s from the first Airflow command to a ready service**. "
             "Per task: airflow = the task runner before spark-submit and after the job; jvm_start = spark-submit "
             "until the job's Python starts; imports = the job's Python imports; work = the job's own time less "
             "its Spark session and GX context. Command: make bench-demo")
    write("demo", {"phases_s": {k: round(v, 2) for k, v in phases.items()}, "total_s": round(total, 1),
                   "tasks": tasks}, rows, ("task", *columns), notes)
    done_with(work)


if __name__ == "__main__":
    main()
