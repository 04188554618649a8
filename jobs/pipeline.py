"""The all-in-one runner (not a job): every batch job's `run()` in the graph's order (jobs/graph.py) in one Spark
session, without Airflow: ingest, validate, clean, train, evaluate, recommend (and with --publish: judge a
running experiment, applying the decision to canaries as the DAG does, then publish). Prints the path of
metrics.json. `make pipeline`, the tests and the benchmarks use it; Airflow runs each job by spark-submit."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime

from conf.settings import ConfigError, load_config
from jobs import clean, evaluate, experiment, graph, ingest, publish, recommend, train, validate
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import run_paths
from jobs.lib.runtime.spark import spark_session
from jobs.lib.tracking.runs import record_run

RUNS = {"ingest": ingest.run, "validate": validate.run, "clean": clean.run, "train": train.run,
        "evaluate": evaluate.run, "recommend": recommend.run, "publish": publish.run,
        "experiment": lambda *args, **kwargs: experiment.run(*args, apply="canary", **kwargs)}
PUBLISHING = ("experiment", "publish")  # run only with --publish

log = logging.getLogger("reco.pipeline")


def run_pipeline(config, run_id: str, spark=None, publish_too: bool = False) -> dict:
    """Run the batch jobs in order; returns {job: seconds}. Stops at the first failure (JobError)."""
    spark = spark or spark_session(config, "pipeline")
    seconds = {}
    steps = [step.name for step in graph.STEPS if step.in_pipeline and (publish_too or step.name not in PUBLISHING)]
    try:
        for name in steps:
            log.info("step %s ...", name)
            started = time.perf_counter()
            RUNS[name](config, run_id, spark=spark)
            seconds[name] = round(time.perf_counter() - started, 2)
            log.info("step %s done in %.1f s", name, seconds[name])
    except JobError:
        record_run(config, run_id, tags={"reco.runner": "pipeline"}, result="failed")
        raise
    record_run(config, run_id, tags={"reco.runner": "pipeline"}, result="success")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m jobs.pipeline", description=__doc__)
    parser.add_argument("--run-id", default=datetime.now(UTC).strftime("manual_%Y%m%dT%H%M%S"))
    parser.add_argument("--config")
    parser.add_argument("--publish", action="store_true", help="also publish to Redis")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
        run_pipeline(config, args.run_id, publish_too=args.publish)
    except (JobError, ConfigError) as exc:
        print(f"pipeline failed: {exc}", file=sys.stderr)
        sys.exit(2)
    print(run_paths(config, args.run_id).metrics)


if __name__ == "__main__":
    main()
