"""validate: run the Great Expectations suites on a run's raw data and the archived events it trains on; stop
the run when any expectation fails.

Writes `validate/report.json` (every result), the suites' raw GX results and Data Docs HTML under the run's
`validate/` folder. On failure it exits 2 with one line per failed expectation.
"""
from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from conf.settings import Config
from jobs.lib.data.validation import (
    build_suites,
    run_suites,
    summarize,
    validation_frames,
)
from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import run_paths, utc_now
from jobs.lib.runtime.spark import spark_session
from schemas.expectations import suites
from schemas.movielens import DATASETS
from schemas.storage import exists, is_local, join, read_json, write_json
from schemas.tables import EVENTS

log = logging.getLogger("reco.validate")


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spec = DATASETS[read_json(paths.manifest)["dataset"]]
    spark = spark or spark_session(config, "validate")
    event_files = read_json(paths.events)["files"] if exists(paths.events) else []
    events = spark.read.schema(EVENTS).parquet(*event_files) if event_files else None
    content = {kind: spark.read.parquet(getattr(paths, f"raw_{kind}")) for kind in ("tags", "genome")
               if exists(getattr(paths, f"raw_{kind}"))}
    frames = validation_frames(spark.read.parquet(paths.raw_ratings), spark.read.parquet(paths.raw_movies),
                               events, spec.rating_values, content)
    docs_dir = join(paths.validation, "data_docs") if is_local(paths.root) else None
    results = run_suites(frames, build_suites(suites(spec, config.validation)), docs_dir)
    rows, failures = summarize(results)
    report = {
        "run_id": run_id, "dataset": spec.name, "success": not failures, "failed": failures,
        "expectations": rows, "data_docs": join(docs_dir, "index.html") if docs_dir else None,
        "validated_at": utc_now(),
    }
    write_json(paths.validation_report, report)
    write_json(join(paths.validation, "gx_results.json"), results)
    if failures:
        raise JobError(f"{len(failures)} expectation(s) failed; report: {paths.validation_report}\n  "
                       + "\n  ".join(failures))
    log.info("all %d expectations passed", len(rows))
    return {"success": True, "expectations": len(rows), "report": paths.validation_report}


def main() -> None:
    job_main("validate", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
