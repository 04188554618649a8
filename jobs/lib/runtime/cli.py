"""The command line every job entry point shares: arguments, one-line failures with exit codes, timing."""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from conf.settings import ConfigError, load_config
from jobs.lib.runtime.errors import JobError, TransientJobError
from schemas.archive import TornRecord

log = logging.getLogger("reco")


def job_main(name: str, description: str, run: Callable[..., Any],
             add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
             run_id_required: bool = True) -> None:
    """Parse the common arguments, run the job, and turn expected failures into a clear message and exit 2.

    Logs one `timing` line: when the Python process started (after spark-submit's JVM), how long the imports
    took, and the job's own seconds (Spark session included), so a DAG run's time can be taken apart."""
    entered = time.time()
    parser = argparse.ArgumentParser(prog=f"spark-submit jobs/{name}.py", description=description)
    parser.add_argument("--run-id", required=run_id_required,
                        help="run identifier; outputs go to <data root>/runs/<run id>/")
    parser.add_argument("--config", help="YAML config file (default: $RECO_CONFIG or conf/local.yaml)")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    extra = {k: v for k, v in vars(args).items() if k not in ("run_id", "config")}
    try:
        config = load_config(args.config)
        result = run(config, args.run_id, **extra)
    except Exception as exc:
        reason, code = expected_failure(exc, name, args.run_id)
        if reason is None:
            raise
        print(f"{name} failed: {reason}", file=sys.stderr, flush=True)
        _stop_spark()  # also lets spark-submit relay the message before the JVM exits with our code
        sys.exit(code)
    finally:
        _log_timing(name, entered)
    if result is not None:
        print(json.dumps(result, indent=2, default=str), flush=True)
    _stop_spark()


def expected_failure(exc: BaseException, name: str, run_id: str | None) -> tuple[str | None, int]:
    """(one-line reason, exit code) for a failure the job reports instead of a traceback, else (None, 0).
    2: stopped on purpose (bad data, a failed gate, a missing input: retrying cannot help); 3: may pass (Redis)."""
    if isinstance(exc, (JobError, ConfigError, TornRecord)):
        return str(exc), 3 if isinstance(exc, TransientJobError) else 2
    path = missing_input(exc)
    if path is not None:  # a job run before the ones it reads (by hand, or after a cleanup)
        return f"missing input {path}: run the jobs before {name} for run id {run_id} first", 2
    return None, 0


def missing_input(exc: BaseException) -> str | None:
    """The path a job could not read because it does not exist (Spark's PATH_NOT_FOUND or a missing file), or
    None for any other failure."""
    if isinstance(exc, FileNotFoundError):
        if exc.filename:
            return str(exc.filename)
        quoted = re.search(r"'([^']+)'", str(exc))  # pyarrow's errors quote the path in the message only
        return quoted.group(1) if quoted else str(exc)
    condition = getattr(exc, "getCondition", None)
    if callable(condition) and condition() == "PATH_NOT_FOUND":
        return (exc.getMessageParameters() or {}).get("path", str(exc))
    return None


def _log_timing(name: str, entered: float) -> None:
    started = _process_start_time()
    log.info("timing %s", json.dumps({
        "job": name, "python_started": _iso(started) if started else None,
        "imports_s": round(entered - started, 2) if started else None,
        "job_s": round(time.time() - entered, 2), "job_done": _iso(time.time())}))


def _process_start_time() -> float | None:
    """When this process started, from /proc (Linux); None elsewhere."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration, IndexError):
        return None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _stop_spark() -> None:
    from pyspark.sql import SparkSession
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
