"""MLflow against a real tracking server (`mlflow server`, .venv-mlflow): a published run appears with its
settings, data, metrics, gate and artifacts, and its model loads back; the registered model's aliases follow
publication and rollback; with the server killed or hung, publication and rollback still happen and the next
call brings MLflow back in step with Redis."""
from __future__ import annotations

import json
import socket
import threading

import pytest

from jobs import publish
from jobs.lib.tracking.connection import tracking_uri
from jobs.lib.tracking.runs import dataset_digest, record_run, record_tuning
from schemas import redis_keys as rk
from schemas.storage import read_json
from tests.support import MlflowServer, RedisServer


def mlflow_client(config):
    from mlflow import MlflowClient
    uri = tracking_uri(config)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def mlflow_run(client, config, run_id: str):
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    found = client.search_runs([experiment.experiment_id], filter_string=f"tags.`reco.run_id` = '{run_id}'")
    assert len(found) == 1, found
    return found[0]


def alias(client, config, name: str) -> str:
    """The Redis version the alias names, through its model version's tag."""
    return client.get_model_version_by_alias(config.tracking.registered_model, name).tags["reco.version"]


@pytest.fixture(scope="module")
def tracked(pipeline_run, tmp_path_factory):
    config, run_id, paths, _ = pipeline_run
    # A patient client: the suite's other worker keeps both CPUs busy, and a slow answer is not the fault tested
    # here (the hung server below is).
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    redis = RedisServer(tmp_path_factory.mktemp("tracking-redis")).start()
    config = config.model_copy(update={
        "redis": config.redis.model_copy(update={"url": redis.url}),
        "tracking": config.tracking.model_copy(update={"enabled": True, "uri": server.url, "timeout_s": 15.0})})
    yield config, run_id, paths, server, redis
    server.stop()
    redis.stop()


def test_the_shared_run_is_in_the_local_store_under_the_data_root(pipeline_run):
    config, run_id, paths, _ = pipeline_run
    assert tracking_uri(config) == f"sqlite:///{config.data_root}/mlflow/mlflow.db"
    run = mlflow_run(mlflow_client(config), config, run_id)
    assert run.data.tags["reco.result"] == "success" and run.info.status == "FINISHED"
    expected = read_json(paths.metrics)["models"]["als"]["ndcg@10"]
    assert run.data.metrics["models.als.ndcg_at_10"] == pytest.approx(expected)


def test_a_publication_records_the_run_and_live_follows_publish_and_rollback(tracked, spark, tmp_path):
    config, run_id, paths, _, redis = tracked
    first = publish.run(config, run_id, spark=spark)
    assert first["tracking"]["tracked"], first["tracking"]
    client = mlflow_client(config)
    run = mlflow_run(client, config, run_id)
    metrics = read_json(paths.metrics)
    # settings, every metric (per activity bucket too), the gate and the version
    assert run.data.params["als.implicit.rank"] == str(config.als.implicit.rank)
    assert run.data.params["split.seed"] == str(config.split.seed)
    assert run.data.params["data.dataset"] == "ml-100k"
    for model in ("als", "popularity"):
        assert run.data.metrics[f"models.{model}.ndcg_at_10"] == pytest.approx(metrics["models"][model]["ndcg@10"])
        for bucket, figures in metrics["models"][model]["by_activity"].items():
            key = f"models.{model}.by_activity.{bucket.replace('+', 'plus')}.precision_at_10"
            assert run.data.metrics[key] == pytest.approx(figures["precision@10"])
    assert run.data.tags["gate.decision"] == "publish" and run.data.tags["gate.reason"] == "every gate passed"
    assert run.data.tags["reco.version"] == first["version"]
    # the data as an MLflow dataset with the manifest's digest
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == dataset_digest(read_json(paths.manifest))
    assert dataset_input.dataset.name == "ml-100k"
    # the files people open, as they are in the run folder
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/metrics.json", "run/report.html", "run/manifest.json", "run/publish.json",
            "run/validation"} <= logged
    downloaded = client.download_artifacts(run.info.run_id, "run/metrics.json", str(tmp_path))
    assert json.loads(open(downloaded).read()) == metrics

    # the registry: the version is a model version under `live`, and the model loads back as Spark ALS
    assert alias(client, config, "live") == first["version"]
    import mlflow
    import mlflow.spark
    mlflow.set_tracking_uri(config.tracking.uri)
    mlflow.set_registry_uri(config.tracking.uri)
    downloads = tmp_path / "model"  # by default MLflow downloads it into a folder of /tmp it leaves behind
    downloads.mkdir()
    model = mlflow.spark.load_model(f"models:/{config.tracking.registered_model}@live", dst_path=str(downloads))
    (als,) = model.stages
    assert als.rank == config.als.implicit.rank
    assert als.userFactors.count() == metrics["counts"]["users"]

    second = publish.run(config, run_id, spark=spark)
    assert alias(client, config, "live") == second["version"] and alias(client, config, "previous") == first["version"]
    rolled = publish.run(config, None, rollback_to="")
    assert rolled["live"] == first["version"] and rolled["tracking"]["synced"]
    assert alias(client, config, "live") == first["version"]
    assert rolled["tracking"]["aliases"]["previous"] is None  # nothing kept is older than the first version


class Hung:
    """A TCP listener that accepts connections and never answers: a tracking server that hangs."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self):
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self):
        self.listener.close()
        for conn in self.held:
            conn.close()


def test_mlflow_killed_or_hung_never_stops_publication_and_the_next_call_catches_up(tracked, spark):
    config, run_id, _, server, redis = tracked
    server.kill()  # SIGKILL: connections refused
    down = publish.run(config, run_id, spark=spark)
    assert redis.client().get(rk.LIVE).decode() == down["version"]  # live moved all the same
    assert down["tracking"]["tracked"] is False and "Connection" in down["tracking"]["reason"]

    hung = Hung()
    try:  # a rollback while the server hangs: each call gives up after tracking.timeout_s
        hung_config = config.model_copy(update={"tracking": config.tracking.model_copy(
            update={"uri": hung.url, "timeout_s": 2.0})})
        rolled = publish.run(hung_config, None, rollback_to="")
    finally:
        hung.close()
    assert rolled["moved"] and rolled["tracking"]["synced"] is False
    live = redis.client().get(rk.LIVE).decode()
    assert live == rolled["live"] != down["version"]

    server.start()  # the same store: MLflow still says what it said before it went down
    client = mlflow_client(config)
    assert alias(client, config, "live") != live or alias(client, config, "previous") != down["version"]
    caught = record_run(config, run_id)  # the next run's tracking step
    assert caught["tracked"] and down["version"] in caught["registry"]["registered"]
    assert alias(client, config, "live") == live
    kept = [v.decode() for v in redis.client().zrevrange(rk.VERSIONS, 0, -1)]
    assert alias(client, config, "previous") == kept[kept.index(live) + 1]


def test_an_experiment_names_its_arms_and_ending_it_moves_live(tracked, spark):
    """A candidate's experiment: `control` and `treatment` name the arms; abort leaves live on control and
    removes the arms' aliases; a second candidate promoted moves live to it, and `previous` to the version a
    rollback would go to."""
    config, run_id, _, _, redis = tracked
    client = mlflow_client(config)
    control = redis.client().get(rk.LIVE).decode()
    candidate = publish.run(config, run_id, spark=spark, candidate=True, share=0.5)
    treatment = candidate["version"]
    assert alias(client, config, "control") == control and alias(client, config, "treatment") == treatment
    aborted = publish.run(config, None, abort=True)
    assert aborted["tracking"]["aliases"]["treatment"] is None and aborted["tracking"]["aliases"]["control"] is None
    assert alias(client, config, "live") == control
    second = publish.run(config, run_id, spark=spark, candidate=True, share=0.5)
    publish.run(config, None, promote=True)
    assert alias(client, config, "live") == second["version"]
    kept = [v.decode() for v in redis.client().zrevrange(rk.VERSIONS, 0, -1)]
    assert alias(client, config, "previous") == kept[kept.index(second["version"]) + 1]


def test_a_tuning_search_is_a_parent_run_with_a_child_per_candidate(tracked):
    config, *_ = tracked
    board = [{"rank": 64, "reg_param": 0.5, "ndcg@10": 0.41, "precision@10": 0.3, "fold_ndcg": [0.4, 0.42],
              "fit_seconds": 3.0},
             {"rank": 32, "reg_param": 1.0, "ndcg@10": 0.39, "precision@10": 0.28, "fold_ndcg": [0.38, 0.4],
              "fit_seconds": 2.0}]
    recorded = record_tuning(config, "tune_test", board, "ndcg@10")
    assert recorded["tracked"] and recorded["trials"] == 2
    client = mlflow_client(config)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{recorded['mlflow_run_id']}'",
                                  order_by=["metrics.rank ASC"])
    assert [(c.data.params["rank"], c.data.params["reg_param"]) for c in children] == [("64", "0.5"), ("32", "1.0")]
    assert [c.data.metrics["ndcg_at_10"] for c in children] == [0.41, 0.39]
    history = client.get_metric_history(children[0].info.run_id, "ndcg_at_10/fold")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [0.4, 0.42]
