"""The quality gate: whether a run may be published, judged on its metrics and on the live version's."""
from __future__ import annotations

import redis

from conf import redis_client
from conf.settings import Config
from jobs.lib.evaluation.metrics import metric
from schemas import redis_keys


def live_metrics(config: Config) -> tuple[dict | None, str]:
    """The live version's metadata from Redis, for the regression gate, and a note of how it went."""
    try:
        client = redis_client.reader(config.redis)
        version = client.get(redis_keys.LIVE)
        if version is None:
            return None, "no live version"
        meta = redis_keys.decode(client.get(redis_keys.key(version.decode(), "meta")))
        return meta, f"live version {version.decode()}"
    except redis.RedisError as exc:
        return None, f"live version unknown (Redis: {exc})"


def quality_gate(metrics: dict, live: dict | None, config: Config) -> tuple[bool, list[dict]]:
    """Publish only when ALS beats popularity on NDCG@k by the configured lift and does not fall more than the
    configured tolerance below the live version's NDCG@k (same dataset and k only)."""
    k = metrics["k"]
    name = metric("ndcg", k)
    als, pop = metrics["models"]["als"][name], metrics["models"]["popularity"][name]
    lift = config.gates.min_ndcg_lift_over_popularity
    checks = [{"gate": f"als {name} > popularity {name} + {lift}", "als": als, "popularity": pop,
               "passed": als > pop + lift}]
    live_value = None
    if live and live.get("dataset") == metrics["dataset"] and live.get("k") == k:
        live_value = (live.get("metrics") or {}).get(name)
    if live_value is not None:
        drop = config.gates.max_ndcg_drop_vs_live
        checks.append({"gate": f"als {name} >= live {name} - {drop}", "als": als, "live": live_value,
                       "live_version": live.get("version"), "passed": als >= live_value - drop})
    return all(c["passed"] for c in checks), checks
