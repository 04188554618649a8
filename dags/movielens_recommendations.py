"""Daily MovieLens recommendations: every Spark job through spark-submit, then publication to Redis. The steps
and their order are the batch run's graph (jobs/graph.py):

ingest -> (validate, clean) -> train -> evaluate -> gate -> recommend -> publish -> smoke_check -> cleanup
-> report_run (always: the run's result and figures for /metrics)
ingest -> experiment_running -> experiment -> publish: a running experiment is judged on the exposures and
clicks ingest archived (jobs/experiment.py); a canary is promoted or rolled back by that judgement before this
run publishes. Release mode (params.release / experiments.release): direct flips live; canary publishes a
candidate at experiments.canary_share (held while an undecided canary runs).

Wiring only: the work lives in jobs/ (Spark) and in small callables that import project code when they run,
so parsing this file stays cheap. The Spark master comes from the `spark_default` connection
(AIRFLOW_CONN_SPARK_DEFAULT), `local[2]` unless set otherwise.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException

from conf.settings import load_config  # pydantic and YAML: cheap to import
from jobs import graph  # plain Python
from jobs.lib.runtime.class_archive import jvm_options  # plain Python
from schemas.movielens import DATASET_NAMES  # plain Python

REPO = Path(__file__).resolve().parent.parent
RUN_ID = "{{ run_id | reco_run_id }}"
# The DAG's own settings come through the one loader (RECO_CONFIG and RECO_* as for the jobs): `dag.retry_delay_s`
# (doubles on each retry; tests shorten it) and `spark.driver_memory`.
SETTINGS = load_config()

# Per-run choices reach the jobs as the same RECO_* variables the config loader reads.
JOB_ENV = {
    "RECO_DATASET": "{{ params.dataset }}",
    # Not RECO_MOVIELENS_DIR: the worker's own (the operator's folder, trusted) stays; a folder a run's conf names
    # must lie under data.movielens_roots.
    "RECO_RUN_MOVIELENS_DIR": "{{ params.movielens_dir or '' }}",
    "RECO_DOWNLOAD_BASE_URL": "{{ params.download_base_url or '' }}",
    "RECO_EXPERIMENTS_RELEASE": "{{ params.release or '' }}",
}


def _reco_run_id(airflow_run_id: str) -> str:
    from jobs.lib.runtime.run_layout import sanitize_run_id
    return sanitize_run_id(airflow_run_id)


class SparkJobOperator(SparkSubmitOperator):
    """spark-submit of one job. Exit code 2 is a failure the job meant (bad data, a failed gate): the task fails
    at once, since retrying cannot fix it. Anything else (3: Redis unreachable, a lost JVM) retries with backoff."""

    def execute(self, context):
        # On the worker, at run time: its driver JVM maps the archive of Spark's classes when setup built one.
        self.env_vars = {**(self.env_vars or {}),
                         "SPARK_SUBMIT_OPTS": jvm_options(os.environ.get("SPARK_SUBMIT_OPTS", ""))}
        try:
            return super().execute(context)
        except Exception as exc:
            if "Error code is: 2." in str(exc):  # the provider's message names spark-submit's exit code
                raise AirflowFailException(f"{self.task_id} stopped on purpose; not retried. {exc}") from exc
            raise


def spark_job(step: graph.Step, *extra_args: str) -> SparkJobOperator:
    return SparkJobOperator(
        task_id=step.name,
        application=str(REPO / "jobs" / f"{step.name}.py"),
        application_args=["--run-id", RUN_ID, *step.args, *extra_args],
        conn_id="spark_default",
        name=f"reco-{step.name}-{RUN_ID}",
        # Only the per-run choices: env_vars is a templated field, stored in Airflow's database and shown in its UI.
        # Everything else (RECO_REDIS_URL with its password among it) spark-submit inherits from the worker's own
        # environment at run time, so no credential is ever rendered or stored.
        env_vars=JOB_ENV,
        conf={"spark.ui.showConsoleProgress": "false"},
        driver_memory=SETTINGS.spark.driver_memory,
        execution_timeout=timedelta(minutes=step.timeout_minutes),
        trigger_rule=step.trigger_rule,
    )


with DAG(
    dag_id="movielens_recommendations",
    description="Validate, train, evaluate and publish MovieLens recommendations",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    user_defined_filters={"reco_run_id": _reco_run_id},
    params={
        # Defaults come from the environment of the scheduler (the same RECO_* variables as everywhere).
        "dataset": Param(os.environ.get("RECO_DATASET", ""), enum=["", *DATASET_NAMES],
                         description="MovieLens release; empty: detected from movielens_dir, else ml-100k"),
        "movielens_dir": Param(os.environ.get("RECO_MOVIELENS_DIR", ""), type="string",
                               description="local MovieLens folder (under data.movielens_roots unless it is "
                                           "the operator's RECO_MOVIELENS_DIR); empty: that one, else the download"),
        "download_base_url": Param(os.environ.get("RECO_DOWNLOAD_BASE_URL", ""), type="string",
                                   description="where the zips are; empty: GroupLens"),
        "force": Param(False, type="boolean", description="publish even when the quality gate fails"),
        "release": Param(os.environ.get("RECO_EXPERIMENTS_RELEASE", ""), enum=["", "direct", "canary"],
                         description="direct: the new version goes live; canary: a candidate for a share of "
                                     "users, promoted or rolled back by a later run's judgement; empty: config"),
    },
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=SETTINGS.dag.retry_delay_s),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(minutes=30),
    },
    tags=["movielens", "spark", "redis"],
) as dag:

    def minutes(name: str) -> timedelta:
        return timedelta(minutes=graph.BY_NAME[name].timeout_minutes)

    @task.short_circuit(task_id="gate", execution_timeout=minutes("gate"))
    def gate(reco_run: str, params=None) -> bool:
        """Go on to recommend and publish only when metrics.json says publishable (or params.force)."""
        from conf.settings import load_config
        from jobs.lib.runtime.run_layout import run_paths
        from schemas.storage import read_json
        metrics = read_json(run_paths(load_config(), reco_run).metrics)
        failed = [g["gate"] for g in metrics.get("gates", []) if not g.get("passed")]
        print(f"publishable={metrics['publishable']} failed gates={failed} force={params['force']}")
        return bool(metrics["publishable"] or params["force"])

    @task.short_circuit(task_id="experiment_running", ignore_downstream_trigger_rules=False,
                        execution_timeout=minutes("experiment_running"))
    def experiment_running() -> bool:
        """Judge only when an experiment runs (saves a Spark job's start-up on most nights)."""
        from conf import redis_client
        from conf.settings import load_config
        from jobs.lib.loop.experiment_control import current
        running = current(redis_client.writer(load_config().redis))
        print(f"running experiment: {running['id'] if running else None}")
        return running is not None

    @task(task_id="smoke_check", execution_timeout=minutes("smoke_check"))
    def smoke_check(reco_run: str) -> dict:
        """Query a sample of users and movies through the service's own reader; on any gap, point live back
        to the previous version and fail the run."""
        from conf.settings import load_config
        from jobs.lib.publication.versions import check_published_run
        return check_published_run(load_config(), reco_run)

    @task(task_id="cleanup", execution_timeout=minutes("cleanup"))
    def cleanup() -> list[str]:
        """Delete versions beyond the retention count (publish prunes too; this catches stragglers)."""
        from conf import redis_client
        from conf.settings import load_config
        from jobs.lib.publication.versions import prune
        from jobs.lib.runtime.leases import Lease, default_holder
        config = load_config()
        client = redis_client.writer(config.redis)
        with Lease(client, "publish", default_holder("cleanup"), config.redis.lease_ttl_s,
                   config.redis.lease_wait_s) as lease:
            return prune(client, config.redis.retention, lease)

    @task(task_id="report_run", trigger_rule=graph.BY_NAME["report_run"].trigger_rule,
          execution_timeout=minutes("report_run"))
    def report_run(reco_run: str, ti=None, dag_run=None) -> dict:
        """Whatever happened before: record the run's result, task seconds and row counts in Redis for the
        service's /metrics (reco_batch_*, the RecoNightlyRunFailed alert) and the run in MLflow; then fail if the
        run did."""
        from conf.settings import load_config
        from jobs.lib.runtime.run_summary import record, summarize
        tasks = [dict(b) for b in ti.get_task_breadcrumbs(dag_run.dag_id, dag_run.run_id)
                 if b["task_id"] != "report_run"]
        from jobs.lib.tracking.runs import record_run
        config = load_config()
        summary = summarize(config, reco_run, tasks)
        record(config, summary)
        print(f"run {reco_run}: {summary['result']}; rows {summary['rows']}")
        # The run in MLflow (settings, data, metrics, gate, artifacts, model; aliases caught up): never fails it.
        logical_date = dag_run.logical_date.isoformat() if dag_run.logical_date else ""
        summary["tracking"] = record_run(config, reco_run, result=summary["result"], tags={
            "airflow.dag_id": dag_run.dag_id, "airflow.run_id": dag_run.run_id, "airflow.logical_date": logical_date})
        print(f"MLflow: {summary['tracking']}")
        if summary["result"] == "failed":
            raise AirflowFailException(f"run {reco_run} failed: {summary['task_states']}")
        return summary

    # Every step of the graph as a task, then its edges.
    tasks = {"gate": gate(RUN_ID), "experiment_running": experiment_running(), "smoke_check": smoke_check(RUN_ID),
             "cleanup": cleanup(), "report_run": report_run(RUN_ID)}
    publish_args = ("{{ '--force' if params.force else '--no-force' }}", "--no-record",  # report_run records
                    "--data-as-of", "{{ logical_date.isoformat() if logical_date else '' }}")
    for step in graph.STEPS:
        if step.spark_job:
            tasks[step.name] = spark_job(step, *(publish_args if step.name == "publish" else ()))
    for before, after in graph.edges():
        tasks[before] >> tasks[after]
