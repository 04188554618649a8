"""Where MLflow is and how patiently it is asked: one place for the tracking URI, the experiment and the
client's timeouts."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from conf.settings import Config
from schemas.storage import is_local

log = logging.getLogger("reco.tracking")


def tracking_uri(config: Config) -> str:
    """tracking.uri, else a SQLite store under the data root (what `make mlflow` serves)."""
    if config.tracking.uri:
        return config.tracking.uri
    return f"sqlite:///{local_store(config) / 'mlflow.db'}"


def local_store(config: Config) -> Path:
    if not is_local(config.data_root):
        raise ValueError("tracking.uri must be set when data.root is not a local folder")
    return Path(config.data_root) / "mlflow"


def client(config: Config):
    """An MlflowClient that gives up fast: one attempt, tracking.timeout_s (a server that is down costs a run
    seconds, not the client's default minutes of retries). No telemetry: this machine may have no internet."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(max(1, config.tracking.timeout_s)))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri(config)
    if uri.startswith("sqlite:///"):
        local_store(config).mkdir(parents=True, exist_ok=True)
    import mlflow  # noqa: F401  - imported here: a second and more, paid only by what tracks
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(mlflow_client, config: Config) -> str:
    """The experiment's id, created on first use (artifacts beside a local store)."""
    found = mlflow_client.get_experiment_by_name(config.tracking.experiment)
    if found is not None:
        return found.experiment_id
    location = None
    if not config.tracking.uri:
        location = (local_store(config) / "artifacts").as_uri()
    try:  # the kind tag opens the UI on its model-training view
        return mlflow_client.create_experiment(config.tracking.experiment, artifact_location=location,
                                               tags={"mlflow.experimentKind": "custom_model_development"})
    except Exception:  # created meanwhile by another process
        found = mlflow_client.get_experiment_by_name(config.tracking.experiment)
        if found is None:
            raise
        return found.experiment_id


def run_named(mlflow_client, exp_id: str, run_id: str):
    """The MLflow run of batch run `run_id` (tag reco.run_id), or None."""
    runs = mlflow_client.search_runs([exp_id], filter_string=f"tags.`reco.run_id` = '{run_id}'", max_results=1)
    return runs[0] if runs else None



if __name__ == "__main__":  # for `make mlflow`: the tracking URI and where a local store keeps artifacts
    from conf.settings import load_config
    loaded = load_config()
    print(tracking_uri(loaded), local_store(loaded) / "artifacts" if not loaded.tracking.uri else "")
