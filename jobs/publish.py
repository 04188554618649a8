"""publish: write a run's answers into Redis as a new version, verify it, then switch the live pointer.

    spark-submit jobs/publish.py --run-id RUN [--force]     publish (refused when metrics say not publishable)
    spark-submit jobs/publish.py --run-id RUN --candidate [--share 0.5]
                                                            publish as a candidate and start an experiment
    spark-submit jobs/publish.py --promote | --abort        end the running experiment: treatment or control live
    spark-submit jobs/publish.py --rollback [VERSION]       point live back to a kept version (default: previous)
    spark-submit jobs/publish.py --prune                    delete versions beyond the retention count

With `experiments.release: canary` every publication is a candidate at `experiments.canary_share`; while an
experiment is still running, a canary publication is held (nothing is written) until a judgement ends it.

Values are built in Spark in the exact shape the API returns, kept as Parquet in the run's folder
(publish/values.parquet, built once per run's outputs) and written from there by the driver with pipelined MSETs.
Readers never see half a version: the pointer moves only after every key is written and counted.
"""
from __future__ import annotations

import argparse

from pyspark.sql import SparkSession

from conf import redis_client
from conf.settings import Config
from jobs.lib.loop import experiment_control as experiments
from jobs.lib.publication import versions as publication
from jobs.lib.publication.release import publish_run
from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.leases import Lease, default_holder
from jobs.lib.runtime.spark import spark_session
from jobs.lib.tracking.registry import sync_registry
from jobs.lib.tracking.runs import record_run


def run(config: Config, run_id: str | None, spark: SparkSession | None = None, force: bool = False,
        rollback_to: str | bool | None = None, prune_only: bool = False, candidate: bool = False,
        share: float | None = None, salt: str | None = None, promote: bool = False, abort: bool = False,
        data_as_of: str | None = None, record: bool = True) -> dict:
    result = _move(config, run_id, spark, force, rollback_to, prune_only, candidate, share, salt, promote, abort,
                   data_as_of)
    # MLflow follows what Redis now says (best effort: the next call catches up if it is down). The DAG records
    # the run in its report_run step, a few seconds later, and passes --no-record.
    if not record:
        result["tracking"] = {"tracked": False, "reason": "--no-record: the caller records the run"}
    elif result.get("version") and not result.get("held"):
        result["tracking"] = record_run(config, run_id)  # the run, its model, the registry and the aliases
    else:
        result["tracking"] = sync_registry(config)
    return result


def _move(config: Config, run_id: str | None, spark: SparkSession | None, force: bool,
          rollback_to: str | bool | None, prune_only: bool, candidate: bool, share: float | None,
          salt: str | None, promote: bool, abort: bool, data_as_of: str | None) -> dict:
    if promote or abort or rollback_to is not None or prune_only:
        client = redis_client.writer(config.redis)
        with Lease(client, "publish", default_holder(run_id), config.redis.lease_ttl_s,
                   config.redis.lease_wait_s) as lease:
            if promote or abort:
                return experiments.end(client, "promoted" if promote else "aborted",
                                       reason="by hand (publish --promote / --abort)")
            if rollback_to is not None:
                return publication.rollback(client, lease, rollback_to or None)
            return {"pruned": publication.prune(client, config.redis.retention, lease)}
    if not run_id:
        raise JobError("--run-id is required to publish")
    return publish_run(config, run_id, spark or spark_session(config, "publish"), force=force,
                       candidate=candidate, share=share, salt=salt, data_as_of=data_as_of or None)


def _arguments(parser) -> None:
    parser.add_argument("--force", action=argparse.BooleanOptionalAction, default=False,
                        help="publish even when metrics.json says not publishable")
    parser.add_argument("--rollback", dest="rollback_to", nargs="?", const="", default=None, metavar="VERSION",
                        help="point live at VERSION (default: the previous kept version) and exit")
    parser.add_argument("--prune", dest="prune_only", action="store_true",
                        help="delete versions beyond redis.retention and exit")
    parser.add_argument("--candidate", action="store_true",
                        help="publish without going live and start an experiment against the live version")
    parser.add_argument("--share", type=float, default=None,
                        help="the candidate's share of users (default: experiments.canary_share)")
    parser.add_argument("--salt", default=None,
                        help="the candidate's assignment salt (default: random); the same salt, the same split")
    parser.add_argument("--data-as-of", default=None, metavar="ISO-TIME",
                        help="when the run's data was current (the DAG passes its logical date): a live version "
                             "built from newer data is not replaced unless --force")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True,
                        help="record the run and move the registered model's aliases in MLflow (the DAG's "
                             "report_run does it instead: --no-record)")
    parser.add_argument("--promote", action="store_true", help="end the running experiment: treatment goes live")
    parser.add_argument("--abort", action="store_true", help="end the running experiment: control stays live")


def main() -> None:
    job_main("publish", __doc__.splitlines()[0], run, _arguments, run_id_required=False)


if __name__ == "__main__":
    main()
