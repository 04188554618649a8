"""What every job shares: the Spark session factory, the run folder layout, small-file I/O and the CLI.

Each job module exposes `run(config, run_id, spark=None)` (called by tests and by `make pipeline`) and a
`main()` for `spark-submit jobs/<job>.py --run-id ID [--config FILE]`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pyarrow import fs as pafs

from conf.settings import Config, ConfigError, load_config

log = logging.getLogger("reco")

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class JobError(RuntimeError):
    """A job stopped on purpose (bad input, failed gate); the message says why. Exit code 2."""


# ---------------------------------------------------------------- Spark


def spark_session(config: Config, app_name: str):
    """The one SparkSession factory. Under spark-submit the master and memory given there win."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"reco-{app_name}")
    # spark-submit starts the JVM first and hands Python its gateway; its --master and memory must win.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    if not submitted:
        builder = builder.master(config.spark.master).config("spark.driver.memory", config.spark.driver_memory)
        # Python workers run the driver's interpreter (the project's venv), not whatever python3 is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = {
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        # ALS checkpoints go under <data root>/checkpoints; let Spark delete them once unreferenced.
        "spark.cleaner.referenceTracking.cleanCheckpoints": "true",
        **config.spark.extra,
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # per-call connection chatter
    # ALS lineage grows with every iteration; without a checkpoint dir ~20 iterations overflow the stack.
    spark.sparkContext.setCheckpointDir(join(config.data_root, "checkpoints"))
    return spark


# ---------------------------------------------------------------- paths and files


def join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *(p.strip("/") for p in parts[1:])])


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if is_local(path):
        return pafs.LocalFileSystem(), os.path.abspath(path.removeprefix("file://"))
    # Hadoop's s3a:// is plain s3:// to Arrow.
    return pafs.FileSystem.from_uri(re.sub(r"^s3a://", "s3://", path))


def write_json(path: str, payload: Any) -> None:
    filesystem, inner = _filesystem(path)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(inner) as out:
        out.write(json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def read_json(path: str) -> Any:
    filesystem, inner = _filesystem(path)
    with filesystem.open_input_stream(inner) as stream:
        return json.loads(stream.read())


def write_text(path: str, text: str) -> None:
    filesystem, inner = _filesystem(path)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(inner) as out:
        out.write(text.encode())


@dataclass(frozen=True)
class RunPaths:
    """Where one run keeps everything. A rerun of the same run id overwrites exactly these."""

    data_root: str
    run_id: str

    @property
    def root(self) -> str:
        return join(self.data_root, "runs", self.run_id)

    def __getattr__(self, name: str) -> str:
        try:
            return join(self.root, _RUN_LAYOUT[name])
        except KeyError:
            raise AttributeError(name) from None


_RUN_LAYOUT = {
    "manifest": "ingest/manifest.json",
    "raw_ratings": "ingest/ratings.parquet",
    "raw_movies": "ingest/movies.parquet",
    "validation": "validate",
    "validation_report": "validate/report.json",
    "clean_ratings": "clean/ratings.parquet",
    "clean_movies": "clean/movies.parquet",
    "clean_report": "clean/report.json",
    "split_train": "train/split/train.parquet",
    "split_test": "train/split/test.parquet",
    "models": "train/models",
    "train_report": "train/report.json",
    "metrics": "metrics.json",
    "evaluation_report": "report.html",
    "user_recs": "recommend/user_recs.parquet",
    "item_neighbors": "recommend/item_neighbors.parquet",
    "popular": "recommend/popular.parquet",
    "movie_stats": "recommend/movie_stats.parquet",
    "recommend_report": "recommend/report.json",
    "publish_report": "publish.json",
}


def run_paths(config: Config, run_id: str) -> RunPaths:
    if not RUN_ID_PATTERN.match(run_id):
        raise JobError(f"run id {run_id!r} must match {RUN_ID_PATTERN.pattern}")
    return RunPaths(config.data_root, run_id)


def sanitize_run_id(raw: str) -> str:
    """Airflow run ids ('scheduled__2026-11-23T00:00:00+00:00') made safe for paths and Redis keys."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("_.-")[:128]


def mark_latest(config: Config, run_id: str) -> None:
    """Point runs/latest at a run whose outputs are complete (a symlink locally, a small text object elsewhere)."""
    runs = join(config.data_root, "runs")
    if is_local(runs):
        tmp = Path(runs) / f".latest.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        os.replace(tmp, Path(runs) / "latest")  # atomic
    else:
        write_text(join(runs, "latest"), run_id)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- CLI


def job_main(name: str, description: str, run: Callable[..., Any],
             add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
             run_id_required: bool = True) -> None:
    """Parse the common arguments, run the job, and turn expected failures into a clear message and exit 2."""
    parser = argparse.ArgumentParser(prog=f"spark-submit jobs/{name}.py", description=description)
    parser.add_argument("--run-id", required=run_id_required, help="run identifier; outputs go to <data root>/runs/<run id>/")
    parser.add_argument("--config", help="YAML config file (default: $RECO_CONFIG or conf/local.yaml)")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    extra = {k: v for k, v in vars(args).items() if k not in ("run_id", "config")}
    try:
        config = load_config(args.config)
        result = run(config, args.run_id, **extra)
    except (JobError, ConfigError) as exc:
        print(f"{name} failed: {exc}", file=sys.stderr, flush=True)
        _stop_spark()  # also lets spark-submit relay the message before the JVM exits with our code
        sys.exit(2)
    if result is not None:
        print(json.dumps(result, indent=2, default=str), flush=True)
    _stop_spark()


def _stop_spark() -> None:
    from pyspark.sql import SparkSession
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
