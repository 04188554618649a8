"""experiment: judge the running experiment on what people clicked, and (for canaries) act on the judgement.

    spark-submit jobs/experiment.py --run-id RUN [--experiment ID] [--apply {none,canary,all}]

Reads the archived exposures and events (ingest archives both first), joins them per user and arm
(jobs/lib/loop/experiment_evidence.py), and writes runs/<run>/experiment/report.json and report.html: users, exposures,
clicks, click-through per exposure and per user, conversions, each difference with a 95% interval clustered by
user and a p-value, the sample-ratio check, the guardrails, the users still needed, and a decision: promote,
keep_running or roll_back. With --apply the decision is carried out (promote: the treatment goes live;
roll_back: the experiment ends and control stays live) for canaries only, or for every experiment.
Without a running experiment (or a named one that has ended) it reports that and changes nothing.
"""
from __future__ import annotations

import logging

import redis
from pyspark.sql import SparkSession

from conf import redis_client
from conf.settings import Config
from jobs.lib.loop import experiment_control as experiments
from jobs.lib.loop import experiment_evidence as judging
from jobs.lib.loop.event_archive import EVENTS, EXPOSURES, archived_files
from jobs.lib.loop.experiment_judgement import carry_out, judge_totals
from jobs.lib.loop.experiment_report import write_report
from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.errors import JobError, TransientJobError
from jobs.lib.runtime.run_layout import run_paths, utc_now
from jobs.lib.runtime.spark import spark_session
from jobs.lib.tracking.registry import sync_registry
from schemas.storage import write_json

log = logging.getLogger("reco.experiment")


def run(config: Config, run_id: str, spark: SparkSession | None = None, experiment_id: str | None = None,
        apply: str = "none") -> dict:
    paths = run_paths(config, run_id)
    client = redis_client.writer(config.redis)
    try:
        experiment = experiments.current(client)
    except redis.RedisError as exc:
        raise TransientJobError(f"Redis unreachable at {redis_client.safe_url(config.redis.url)}: {exc}") from None
    if experiment_id and (experiment or {}).get("id") != experiment_id:
        ended = [e for e in experiments.history(client, 100) if e["id"] == experiment_id]
        if not ended:
            raise JobError(f"no experiment {experiment_id} is running or has ended recently")
        experiment, apply = ended[0], "none"  # an ended experiment can be judged again, not acted on
    if not experiment:
        report = {"run_id": run_id, "experiment": None, "decision": None, "reasons": ["no experiment is running"],
                  "judged_at": utc_now()}
        write_json(paths.experiment_report, report)
        log.info("no experiment is running")
        return report

    exposure_files, event_files = archived_files(config.data_root, EXPOSURES), archived_files(config.data_root, EVENTS)
    totals, guardrails = None, {}
    if exposure_files:
        spark = spark or spark_session(config, "experiment")
        exposures = judging.experiment_exposures(spark.read.parquet(*exposure_files), experiment["id"]).cache()
        events = spark.read.parquet(*event_files) if event_files else \
            spark.createDataFrame([], "user_id long, movie_id long, type string, rating double, ts long, "
                                      "request_id string")
        settings = config.experiments
        totals = judging.per_user_totals(exposures, events, int(settings.attribution_hours * 3600),
                                         settings.conversion_rating).toPandas()
        guardrails = judging.guardrails(exposures)
        exposures.unpersist()
    report = {"run_id": run_id, "experiment": experiment, "judged_at": utc_now(),
              "exposure_files": len(exposure_files), "event_files": len(event_files),
              "settings": config.experiments.model_dump(),
              **judge_totals(totals, experiment, guardrails, config.experiments)}
    report["applied"] = carry_out(client, experiment, report["decision"], apply)
    if report["applied"]:  # MLflow's aliases follow (best effort: the next call catches up if it is down)
        report["tracking"] = sync_registry(config, client)
    write_json(paths.experiment_report, report)
    write_report(paths.experiment_html, report)
    log.info("experiment %s: %s (%s)%s", experiment["id"], report["decision"], "; ".join(report["reasons"]),
             f"; applied: {report['applied']}" if report["applied"] else "")
    return report


def _arguments(parser) -> None:
    parser.add_argument("--experiment", dest="experiment_id", help="judge this experiment (default: the running one)")
    parser.add_argument("--apply", choices=("none", "canary", "all"), default="none",
                        help="carry out the decision: never, for canary releases, or for every experiment")


def main() -> None:
    job_main("experiment", __doc__.splitlines()[0], run, _arguments)


if __name__ == "__main__":
    main()
