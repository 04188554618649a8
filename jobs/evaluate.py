"""evaluate: the GUIDE's protocol for ALS and the popularity baseline, data drift against the live run, the
gates, metrics.json.

Ranking (implicit ALS vs most-popular): Precision, Recall, NDCG and MAP at k over the top k among movies the
user did not rate in train, binary relevance, averaged over users with a test rating; catalog coverage and
popularity bias of the lists; the same by user-activity bucket. Rating prediction (explicit ALS vs each
movie's mean rating): RMSE and MAE on the test ratings.
"""
from __future__ import annotations

import logging

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import SparkSession

from conf.settings import Config
from jobs.lib.data.drift import compare, new_shares, profile
from jobs.lib.evaluation.gates import live_metrics, quality_gate
from jobs.lib.evaluation.metrics import evaluate_models, metric
from jobs.lib.model.als import ExplicitModel
from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.run_layout import run_paths, utc_now
from jobs.lib.runtime.spark import spark_session
from schemas.storage import exists, read_json, write_json

log = logging.getLogger("reco.evaluate")


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    manifest = read_json(paths.manifest)
    spark = spark or spark_session(config, "evaluate")
    k = config.evaluate.k
    train = spark.read.parquet(paths.split_train).cache()
    test = spark.read.parquet(paths.split_test).cache()
    models, timings = evaluate_models(train, test, ALSModel.load(paths.model("eval", "implicit")),
                                      ExplicitModel.load(spark, paths.model("eval", "explicit")), k)
    train_report = read_json(paths.train_report)
    metrics = {
        "run_id": run_id,
        "dataset": manifest["dataset"],
        "k": k,
        "models": models,
        "params": train_report["params"],
        "counts": {**train_report["counts"], "users": train.select("user_id").distinct().count(),
                   "catalog": train.select("movie_id").distinct().count(),
                   "test_users": test.select("user_id").distinct().count()},
        "timings": {**train_report["fit_seconds"], **timings},
        "evaluated_at": utc_now(),
    }
    live, live_note = live_metrics(config)
    publishable, gates = quality_gate(metrics, live, config)
    metrics["profile"] = profile(spark.read.parquet(paths.clean_ratings), spark.read.parquet(paths.clean_movies))
    drift, drift_note, live_profile = _drift(config, spark, paths, metrics, live)
    gates += drift
    publishable = publishable and all(check["passed"] for check in drift)
    metrics.update({"publishable": publishable, "gates": gates, "live_comparison": live_note,
                    "drift": {"note": drift_note, "checks": drift, "live_profile": live_profile}})
    write_json(paths.metrics, metrics)
    train.unpersist()
    test.unpersist()
    try:
        from jobs.lib.evaluation.report import write_report
        write_report(config, paths, metrics)
    except Exception as exc:  # the HTML report is for people; never let it fail the run
        log.warning("evaluation report not written: %s", exc)
    headline = [metric(name, k) for name in ("ndcg", "precision", "rmse")]
    log.info("ALS %s %.4f vs popularity %.4f; publishable=%s (%s)", headline[0], models["als"][headline[0]],
             models["popularity"][headline[0]], publishable, live_note)
    return {"metrics": paths.metrics, "publishable": publishable,
            **{name: {m: models[name][m] for m in headline} for name in models}}


def _drift(config: Config, spark: SparkSession, paths, metrics: dict,
           live: dict | None) -> tuple[list, str, dict | None]:
    """Drift checks against the live version's run, when its metrics (with a profile) are under this data root:
    (checks, a note of what was compared, the live run's profile)."""
    if not config.drift.enabled:
        return [], "drift checks off (drift.enabled: false)", None
    if not live or live.get("dataset") != metrics["dataset"] or live.get("run_id") == metrics["run_id"]:
        return [], "no live run of this dataset to compare with", None
    live_paths = run_paths(config, live["run_id"])
    live_metrics_file = read_json(live_paths.metrics) if exists(live_paths.metrics) else {}
    if "profile" not in live_metrics_file:
        return [], f"the live run {live['run_id']} left no profile under this data root", None
    new = None
    if exists(live_paths.clean_ratings):
        new = new_shares(spark.read.parquet(paths.clean_ratings), spark.read.parquet(live_paths.clean_ratings))
        metrics["profile"].update(new)
    checks = compare(metrics["profile"], live_metrics_file["profile"], new, config.drift, live["run_id"])
    return checks, f"against run {live['run_id']}", live_metrics_file["profile"]


def main() -> None:
    job_main("evaluate", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
