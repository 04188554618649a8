"""The batch run's graph, once: which steps there are, which come after which, and how each runs. The Airflow
DAG builds its tasks from it (dags/movielens_recommendations.py), the all-in-one runner runs its Spark jobs in
its order (jobs/pipeline.py), and the DAG's test checks the DAG against it. Plain Python: Airflow parses the DAG
file often."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    name: str
    after: tuple[str, ...] = ()
    spark_job: bool = True          # a job of jobs/ run by spark-submit; else a task of the DAG file
    args: tuple[str, ...] = ()      # extra arguments of the job
    timeout_minutes: int = 60
    trigger_rule: str = "all_success"
    in_pipeline: bool = True        # run by jobs/pipeline.py (the DAG's own checks and bookkeeping are not)


STEPS = (
    Step("ingest"),
    # Validation gates everything that learns from the data; clean only prepares it, so it runs beside validate.
    Step("validate", after=("ingest",), timeout_minutes=30),
    Step("clean", after=("ingest",)),
    Step("train", after=("validate", "clean"), timeout_minutes=180),
    Step("evaluate", after=("train",)),
    Step("gate", after=("evaluate",), spark_job=False, timeout_minutes=5, in_pipeline=False),
    Step("recommend", after=("gate",), timeout_minutes=120),
    # A running experiment is judged on what ingest archived; a canary is promoted or rolled back before publish.
    Step("experiment_running", after=("ingest",), spark_job=False, timeout_minutes=5, in_pipeline=False),
    Step("experiment", after=("experiment_running",), args=("--apply", "canary")),
    # none_failed: publishes when no experiment was judged (experiment skipped); a failed gate skips it anyway.
    Step("publish", after=("recommend", "experiment"), trigger_rule="none_failed"),
    Step("smoke_check", after=("publish",), spark_job=False, timeout_minutes=5, in_pipeline=False),
    Step("cleanup", after=("smoke_check",), spark_job=False, timeout_minutes=10, in_pipeline=False),
    # all_done: whatever happened before, the run's result and figures are recorded for /metrics.
    Step("report_run", after=("cleanup",), spark_job=False, timeout_minutes=5, trigger_rule="all_done",
         in_pipeline=False),
)
BY_NAME = {step.name: step for step in STEPS}


def edges() -> set[tuple[str, str]]:
    return {(before, step.name) for step in STEPS for before in step.after}


def in_order(names) -> list[str]:
    """The steps among `names` in an order where each comes after those it needs (the order of STEPS is one)."""
    wanted = set(names)
    return [step.name for step in STEPS if step.name in wanted]
