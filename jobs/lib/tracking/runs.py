"""A batch run as an MLflow run: named after the run id (tag reco.run_id; the Airflow run id and logical date as
tags), the settings the model used, the ingested data as an MLflow dataset with the manifest's digest, every
number of metrics.json, the gate's decision and why, the files people open (report, metrics, validation), and
the production ALS model in MLflow's Spark flavor (`mlflow.spark.load_model`). Recording the same run again
(a retried task, a catch-up) updates it: settings once, metrics again, the model only if it is missing."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

from conf.settings import REPO_ROOT, Config
from jobs.lib.runtime.run_layout import run_paths
from jobs.lib.tracking import registry
from jobs.lib.tracking.connection import client, experiment_id, log, run_named
from schemas.storage import exists, is_local, read_json

# The settings a model depends on (the rest place files and servers).
MODEL_SECTIONS = ("validation", "clean", "split", "als", "evaluate", "gates", "drift", "recommend", "content")
# The files of a run people open, by their place in the run folder (jobs/lib/runtime/run_layout.py).
ARTIFACTS = ("metrics", "evaluation_report", "manifest", "validation_report", "clean_report", "train_report",
             "recommend_report", "publish_report")
MODEL_ARTIFACT = "model"  # where the Spark-flavor model sits in the run's artifacts


def metric_key(path: str) -> str:
    """A metrics.json path as an MLflow key (letters, digits, _ - . / : and spaces): ndcg@10 -> ndcg_at_10."""
    return re.sub(r"[^\w.\-/: ]", "_", path.replace("@", "_at_").replace("+", "plus"))


def flatten(tree, prefix: str = "") -> dict:
    """{"a.b.c": leaf} of a nested dict (lists are left out)."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        elif not isinstance(value, list):
            flat[path] = value
    return flat


def run_metrics(metrics: dict) -> dict[str, float]:
    """Every number of metrics.json (the models', per activity bucket, counts, cold-movie and fold-in figures),
    not the echoed settings or the data profile (drift's input)."""
    numbers = {key: value for key, value in flatten({k: v for k, v in metrics.items()
                                                     if k not in ("params", "profile")}).items()
               if isinstance(value, int | float) and not isinstance(value, bool)}
    return {metric_key(key): float(value) for key, value in numbers.items()}


def gate_tags(metrics: dict, forced: bool) -> dict[str, str]:
    failed = [gate["gate"] for gate in metrics.get("gates", []) if not gate.get("passed")]
    decision = "publish" if metrics.get("publishable") else ("forced" if forced else "refused")
    return {"gate.decision": decision,
            "gate.reason": "; ".join(f"failed: {name}" for name in failed) or "every gate passed",
            **{f"gate.{i}": f"{'passed' if g.get('passed') else 'FAILED'}: {g['gate']}"
               for i, g in enumerate(metrics.get("gates", []))}}


def dataset_digest(manifest: dict) -> str:
    """The ingested data's digest: the manifest's file digests and the events archived with them."""
    basis = {"files": {name: f.get("sha256") for name, f in sorted(manifest.get("files", {}).items())},
             "events": ((manifest.get("events") or {}).get("archived") or {}).get("last_id")}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def _read(path: str) -> dict:
    """A run file, or {} for one the run never wrote (a run that stopped early)."""
    return read_json(path) if exists(path) else {}


def record_run(config: Config, run_id: str, tags: dict[str, str] | None = None, result: str | None = None) -> dict:
    """Record batch run `run_id` in MLflow, register what it published and move the aliases; never raises.
    `result` (success / failed) closes the MLflow run with that status. Returns what happened."""
    if not config.tracking.enabled:
        return {"tracked": False, "reason": "tracking.enabled is false"}
    started = time.perf_counter()
    try:
        mlflow_run_id = _record(config, run_id, tags or {}, result)
    except Exception as exc:  # noqa: BLE001 - MLflow is never a reason for a run to fail
        log.warning("run %s not recorded in MLflow (%s: %s); the next run catches up", run_id,
                    type(exc).__name__, str(exc)[:300])
        return {"tracked": False, "reason": f"{type(exc).__name__}: {str(exc)[:300]}",
                "seconds": round(time.perf_counter() - started, 2)}
    synced = registry.sync_registry(config)
    seconds = round(time.perf_counter() - started, 2)  # the import of mlflow included
    log.info("run %s recorded in MLflow in %.2f s (%s); registry: %s", run_id, seconds, mlflow_run_id, synced)
    return {"tracked": True, "mlflow_run_id": mlflow_run_id, "registry": synced, "seconds": seconds}


def _record(config: Config, run_id: str, tags: dict[str, str], result: str | None) -> str:
    from mlflow.entities import Metric, Param, RunTag
    paths = run_paths(config, run_id)
    tags = {**_airflow_tags(), **tags}
    mlflow = client(config)
    exp = experiment_id(mlflow, config)
    metrics, manifest, publish = _read(paths.metrics), _read(paths.manifest), _read(paths.publish_report)
    run = run_named(mlflow, exp, run_id) or mlflow.create_run(
        exp, run_name=run_id, start_time=_started_ms(manifest), tags={
            "reco.run_id": run_id, "mlflow.source.type": "JOB",
            "mlflow.source.name": "dags/movielens_recommendations.py" if "airflow.run_id" in tags
            else "jobs/pipeline.py", **_commit()})
    rid = run.info.run_id

    # Settings: logged once (MLflow refuses to change a parameter), those not there yet.
    settings = flatten({name: getattr(config, name).model_dump() for name in MODEL_SECTIONS})
    settings["data.dataset"] = manifest.get("dataset") or config.data.dataset
    params = [Param(key, json.dumps(value) if not isinstance(value, str) else value)
              for key, value in sorted(settings.items()) if key not in run.data.params]
    all_tags = {**tags, **gate_tags(metrics, bool(publish.get("forced")))} if metrics else dict(tags)
    if publish.get("version"):
        all_tags["reco.version"] = publish["version"]
    if result:
        all_tags["reco.result"] = result
    now = int(time.time() * 1000)
    numbers = [Metric(key, value, now, 0) for key, value in run_metrics(metrics).items()]
    mlflow.log_batch(rid, tags=[RunTag(key, str(value)) for key, value in all_tags.items()])
    for start in range(0, len(params), 100):  # MLflow's limits per call: 100 params, 1,000 metrics
        mlflow.log_batch(rid, params=params[start:start + 100])
    for start in range(0, len(numbers), 1000):
        mlflow.log_batch(rid, metrics=numbers[start:start + 1000])
    if manifest:
        _log_dataset(mlflow, rid, manifest)
    for name in ARTIFACTS:
        path = getattr(paths, name)
        if is_local(path) and Path(path).is_file():
            mlflow.log_artifact(rid, path, artifact_path="run")
    gx_results = Path(paths.validation) / "gx_results.json"
    if gx_results.is_file():
        mlflow.log_artifact(rid, str(gx_results), artifact_path="run/validation")
    model = Path(paths.mlflow_model)
    if model.is_dir() and not any(f.path == MODEL_ARTIFACT for f in mlflow.list_artifacts(rid)):
        mlflow.log_artifacts(rid, str(model), artifact_path=MODEL_ARTIFACT)
    if result:
        mlflow.set_terminated(rid, "FINISHED" if result != "failed" else "FAILED")
    return rid


def _airflow_tags() -> dict[str, str]:
    """The DAG run a job runs in (Airflow exports its context to the task's processes, spark-submit included)."""
    names = {"AIRFLOW_CTX_DAG_ID": "airflow.dag_id", "AIRFLOW_CTX_DAG_RUN_ID": "airflow.run_id",
             "AIRFLOW_CTX_LOGICAL_DATE": "airflow.logical_date"}
    return {tag: os.environ[name] for name, tag in names.items() if os.environ.get(name)}


def _started_ms(manifest: dict) -> int:
    """When the batch run began (its ingest), so that MLflow's duration is the run's."""
    try:
        return int(datetime.fromisoformat(manifest["ingested_at"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return int(time.time() * 1000)


def _commit() -> dict[str, str]:
    """The code's commit, where the code is a git checkout (not in the images)."""
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):  # no git at all
        return {}
    return {"mlflow.source.git.commit": found.stdout.strip()} if found.returncode == 0 else {}


def _log_dataset(mlflow, rid: str, manifest: dict) -> None:
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset, DatasetInput, InputTag
    source = manifest.get("source") or {}
    where = source.get("url") or f"file://{source.get('folder', '')}"
    dataset = MetaDataset(HTTPDatasetSource(where), name=manifest.get("dataset") or "movielens",
                          digest=dataset_digest(manifest))
    made = dataset._to_mlflow_entity()
    entity = Dataset(made.name, made.digest, made.source_type, made.source, profile=json.dumps(
        {"rows": manifest.get("rows", {}), "layout": manifest.get("layout")}))
    mlflow.log_inputs(rid, datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])])


def save_spark_model(model_folder: str, target: str) -> None:
    """The saved ALS model at `model_folder` again in MLflow's Spark flavor at `target` (local files only; the
    tracking step uploads it): `mlflow.spark.load_model(...)` gives a PipelineModel whose one stage is it."""
    import shutil

    import mlflow.spark
    from pyspark.ml import PipelineModel
    from pyspark.ml.recommendation import ALSModel
    if is_local(target):
        shutil.rmtree(target, ignore_errors=True)
    mlflow.spark.save_model(PipelineModel(stages=[ALSModel.load(model_folder)]), target,
                            pip_requirements=[f"pyspark=={_pyspark_version()}"])


def _pyspark_version() -> str:
    import pyspark
    return pyspark.__version__


def record_tuning(config: Config, run_id: str, board: list[dict], ndcg_key: str) -> dict:
    """A tuning search as one MLflow run with a child run per candidate (its settings, mean and per-fold NDCG,
    paired difference to the leader): the leaderboard as a comparison in the UI. Never raises."""
    if not config.tracking.enabled:
        return {"tracked": False, "reason": "tracking.enabled is false"}
    try:
        from mlflow.entities import Metric, Param, RunTag
        mlflow = client(config)
        exp = experiment_id(mlflow, config)
        now = int(time.time() * 1000)
        parent = mlflow.create_run(exp, run_name=f"tune-{run_id}", tags={"reco.run_id": f"tune-{run_id}",
                                                                          "reco.kind": "tuning"})
        for rank, row in enumerate(board, start=1):
            child = mlflow.create_run(exp, run_name=f"tune-{run_id}-{rank}", tags={
                "mlflow.parentRunId": parent.info.run_id, "reco.kind": "tuning trial"})
            numbers = {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            settings = {k: v for k, v in row.items() if k not in numbers and not isinstance(v, list)}
            settings.update({k: v for k, v in numbers.items() if k in config.als.implicit.model_fields})
            mlflow.log_batch(child.info.run_id,
                             metrics=[Metric(metric_key(k), float(v), now, 0) for k, v in numbers.items()
                                      if k not in settings]
                             + [Metric(metric_key(ndcg_key) + "/fold", float(v), now, i)
                                for i, v in enumerate(row.get("fold_ndcg", []))]
                             + [Metric("rank", float(rank), now, 0)],
                             params=[Param(k, str(v)) for k, v in settings.items()],
                             tags=[RunTag("reco.trial", json.dumps(settings, sort_keys=True))])
            mlflow.set_terminated(child.info.run_id)
        mlflow.set_terminated(parent.info.run_id)
        return {"tracked": True, "mlflow_run_id": parent.info.run_id, "trials": len(board)}
    except Exception as exc:  # noqa: BLE001 - the leaderboard files are written whatever MLflow says
        log.warning("tuning %s not recorded in MLflow (%s: %s)", run_id, type(exc).__name__, str(exc)[:300])
        return {"tracked": False, "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
