"""experiment: judge the running experiment on what people clicked, and (for canaries) act on the judgement.

    spark-submit jobs/experiment.py --run-id RUN [--experiment ID] [--apply {none,canary,all}]

Reads the archived exposures and events (ingest archives both first), joins them per user and arm
(jobs/lib/judging.py), and writes runs/<run>/experiment/report.json and report.html: users, exposures,
clicks, click-through per exposure and per user, conversions, each difference with a 95% interval clustered by
user and a p-value, the sample-ratio check, the guardrails, the users still needed, and a decision: promote,
keep_running or roll_back. With --apply the decision is carried out (promote: the treatment goes live;
roll_back: the experiment ends and control stays live) for canaries only, or for every experiment.
Without a running experiment (or a named one that has ended) it reports that and changes nothing.
"""
from __future__ import annotations

import logging

import numpy as np
import redis
from pyspark.sql import SparkSession

from conf.settings import Config
from jobs.lib import experiment_stats, experiments, judging
from jobs.lib.errors import JobError, TransientJobError
from jobs.lib.events import EVENTS, EXPOSURES, archive_folder, committed_batches
from jobs.lib.experiment_report import over_time, write_report
from jobs.lib.files import write_json
from jobs.lib.runs import run_paths, utc_now
from jobs.lib.runtime import job_main, spark_session
from schemas import redis_client
from schemas.experiments import TREATMENT

log = logging.getLogger("reco.experiment")


def archived_files(config: Config, stream) -> list[str]:
    return [b["file"] for b in committed_batches(archive_folder(config.data_root, stream)) if b["rows"]]


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

    exposure_files, event_files = archived_files(config, EXPOSURES), archived_files(config, EVENTS)
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
              "settings": config.experiments.model_dump(), **judge_totals(totals, experiment, guardrails, config)}
    report["applied"] = act(client, experiment, report["decision"], apply)
    write_json(paths.experiment_report, report)
    write_report(paths.experiment_html, report)
    log.info("experiment %s: %s (%s)%s", experiment["id"], report["decision"], "; ".join(report["reasons"]),
             f"; applied: {report['applied']}" if report["applied"] else "")
    return report


def judge_totals(totals, experiment: dict, guardrails: dict, config: Config) -> dict:
    """The statistics over the collected per-user totals (pandas), and the over-time series."""
    if totals is None or totals.empty:
        return {"decision": experiment_stats.KEEP_RUNNING, "reasons": ["no exposures archived yet"]}
    users = totals.groupby(["user_id", "arm"], as_index=False)[["exposures", "clicked", "conversions"]].sum()
    both = int(users["user_id"].duplicated().sum())
    result = experiment_stats.judge((users["arm"] == TREATMENT).to_numpy(np.int8), users["exposures"].to_numpy(),
                                    users["clicked"].to_numpy(), users["conversions"].to_numpy(),
                                    experiment["share"], guardrails, config.experiments)
    result["users_in_both_arms"] = both
    result["clicks"] = {arm: int(totals.loc[totals["arm"] == arm, "clicks"].sum()) for arm in ("control", TREATMENT)}
    result["over_time"] = over_time(totals, config.experiments.alpha)
    return result


def act(client, experiment: dict, decision: str | None, apply: str) -> str | None:
    """Carry out the decision when asked to for this kind of experiment; returns what was done."""
    if apply == "none" or (apply == "canary" and experiment.get("kind") != "canary"):
        return None
    if decision == experiment_stats.PROMOTE:
        experiments.end(client, "promoted", experiment["id"], reason="judged better (jobs/experiment.py)")
        return "promoted"
    if decision == experiment_stats.ROLL_BACK:
        experiments.end(client, "aborted", experiment["id"], reason="judged worse or broken (jobs/experiment.py)")
        return "rolled_back"
    return None


def _arguments(parser) -> None:
    parser.add_argument("--experiment", dest="experiment_id", help="judge this experiment (default: the running one)")
    parser.add_argument("--apply", choices=("none", "canary", "all"), default="none",
                        help="carry out the decision: never, for canary releases, or for every experiment")


def main() -> None:
    job_main("experiment", __doc__.splitlines()[0], run, _arguments)


if __name__ == "__main__":
    main()
