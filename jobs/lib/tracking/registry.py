"""The registered model follows publication. Redis's pointer is the truth (schemas/redis_keys.py); this makes
MLflow say the same: each version kept in Redis whose run has a logged model is a model version (tag
reco.version), and the aliases name what Redis names: `live`, `previous` (where a rollback goes), and during an
experiment `control` and `treatment`. It is idempotent and reads only Redis and MLflow, so whoever calls it
(publication, rollback, promote, abort, each run's tracking step) repairs whatever an earlier call missed while
MLflow was down."""
from __future__ import annotations

from conf import redis_client
from conf.settings import Config
from jobs.lib.tracking.connection import client, experiment_id, log, run_named
from schemas import redis_keys as rk
from schemas.versions import VersionMeta

ALIASES = ("live", "previous", "control", "treatment")


def redis_view(redis) -> dict[str, str | None]:
    """What each alias should name, read from Redis: live, the newest kept version older than it, the arms."""
    live = (redis.get(rk.LIVE) or b"").decode() or None
    kept = [v.decode() for v in redis.zrevrange(rk.VERSIONS, 0, -1)]
    older = kept[kept.index(live) + 1:] if live in kept else []
    experiment = rk.decode(redis.get(rk.EXPERIMENT)) or {}
    return {"live": live, "previous": older[0] if older else None,
            "control": experiment.get("control"), "treatment": experiment.get("treatment"), "_kept": kept}


def sync_registry(config: Config, redis=None) -> dict:
    """Register the kept versions MLflow lacks and point the aliases where Redis points; never raises.
    Returns {"aliases": {alias: model version or None}, "registered": [versions]} or {"synced": False, ...}."""
    if not config.tracking.enabled:
        return {"synced": False, "reason": "tracking.enabled is false"}
    try:
        return _sync(config, redis or redis_client.writer(config.redis))
    except Exception as exc:  # noqa: BLE001 - MLflow down: Redis still serves; the next call catches up
        log.warning("MLflow's registry not brought in step with Redis (%s: %s); the next publication or run "
                    "catches up", type(exc).__name__, str(exc)[:300])
        return {"synced": False, "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}


def _sync(config: Config, redis) -> dict:
    from mlflow.exceptions import MlflowException
    view = redis_view(redis)
    mlflow = client(config)
    name = config.tracking.registered_model
    try:
        mlflow.get_registered_model(name)
    except MlflowException:
        mlflow.create_registered_model(name, description="Implicit ALS (Spark) of each published version; "
                                                         "aliases follow Redis's live pointer")
    by_version = {mv.tags.get("reco.version"): mv for mv in mlflow.search_model_versions(f"name='{name}'")}
    registered = []
    wanted = {v for alias, v in view.items() if alias != "_kept" and v} | set(view["_kept"])
    exp = None
    for version in sorted(wanted - set(by_version)):
        meta = VersionMeta.from_json(redis.get(rk.key(version, "meta")))
        if meta is None:
            continue
        exp = exp or experiment_id(mlflow, config)
        run = run_named(mlflow, exp, meta.run_id)
        if run is None or not any(f.path == "model" for f in mlflow.list_artifacts(run.info.run_id)):
            continue  # not recorded yet: the run's tracking step registers it
        by_version[version] = mlflow.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
            tags={"reco.version": version, "reco.run_id": meta.run_id, "dataset": meta.dataset or ""},
            description=f"version {version} of run {meta.run_id}")
        registered.append(version)
    current = mlflow.get_registered_model(name).aliases  # {alias: model version number}
    aliases = {}
    for alias in ALIASES:
        target = by_version.get(view[alias]) if view[alias] else None
        if target is not None:
            if current.get(alias) != target.version:
                mlflow.set_registered_model_alias(name, alias, target.version)
            aliases[alias] = target.version
        else:
            if alias in current:
                mlflow.delete_registered_model_alias(name, alias)
            aliases[alias] = None
    return {"synced": True, "aliases": aliases, "registered": registered}
