"""What a finished run says about itself to operators: its result, each task's seconds, row counts and headline
metric, kept in Redis (`reco:{ctl}:last_run`) where the lookup service exports it on /metrics (reco_batch_*)
and the RecoNightlyRunFailed alert reads it. The DAG's last task (report_run, whatever happened before it)
records it."""
from __future__ import annotations

from conf import redis_client
from conf.settings import Config
from jobs.lib.runtime.run_layout import run_paths, utc_now
from schemas import redis_keys as rk
from schemas.storage import exists, read_json

# (table, report attribute, path in the report): the row counts an operator checks first.
ROW_COUNTS = (("raw_ratings", "manifest", ("rows", "ratings")),
              ("events_trained_on", "manifest", ("events", "rows_trained_on")),
              ("events_lost", "manifest", ("events", "lost")),
              ("clean_ratings", "clean_report", ("ratings_out",)),
              ("users_with_lists", "recommend_report", ("counts", "users")),
              ("published_keys", "publish_report", ("keys",)))


def result_of(states: dict[str, str]) -> str:
    """success: published and smoke-checked; gate_failed: the gate stopped it; failed: anything else."""
    if states.get("smoke_check") == "success" and states.get("publish") == "success":
        return "success"
    if states.get("gate") == "success" and states.get("recommend") == "skipped":
        return "gate_failed"
    return "failed"


def summarize(config: Config, run_id: str, tasks: list[dict]) -> dict:
    """`tasks`: [{"task_id", "state", "duration"}] of the run's finished tasks (Airflow's breadcrumbs)."""
    states = {t["task_id"]: t["state"] for t in tasks}
    paths = run_paths(config, run_id)
    rows = {}
    for table, report, keys in ROW_COUNTS:
        path = getattr(paths, report)
        if exists(path):
            node = read_json(path)
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, (int, float)):
                rows[table] = node
    metrics = read_json(paths.metrics) if exists(paths.metrics) else {}
    k = metrics.get("k", 10)
    als, popularity = (metrics.get("models", {}).get(m) or {} for m in ("als", "popularity"))
    headline = {f"{name}@{k}": als.get(f"{name}@{k}") for name in ("ndcg", "precision", "recall")}
    headline.update({"rmse": als.get("rmse"), "coverage": als.get("coverage"),
                     f"popularity_ndcg@{k}": popularity.get(f"ndcg@{k}")})
    return {"run_id": run_id, "result": result_of(states), "finished_at": utc_now(),
            "task_seconds": {t["task_id"]: round(t["duration"], 2) for t in tasks if t.get("duration")},
            "task_states": states, "rows": rows,
            "metrics": {name: value for name, value in headline.items() if isinstance(value, (int, float))},
            "failed_gates": [g["gate"] for g in metrics.get("gates", []) if not g.get("passed")]}


def record(config: Config, summary: dict) -> None:
    redis_client.writer(config.redis).set(rk.LAST_RUN, rk.encode(summary))
