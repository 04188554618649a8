"""Data drift between runs on ML-100K (real Spark, real Redis): a run whose rating scale shifted, and one where a
single user rated every movie, are refused publication with the drift named; the same data passes."""
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs import evaluate, publish
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import run_paths
from schemas.storage import read_json
from tests.support import RedisServer


@pytest.fixture(scope="module")
def live_run(pipeline_run, spark, tmp_path_factory):
    """A copy of the shared run in a data root of this module's own, published as the live version into a
    Redis of its own (the runs made here stay out of the shared data root)."""
    shared_config, run_id, shared_paths, _ = pipeline_run
    root = tmp_path_factory.mktemp("drift-data")
    shutil.copytree(shared_paths.root, root / "runs" / run_id)
    server = RedisServer(tmp_path_factory.mktemp("drift-redis")).start()
    config = shared_config.model_copy(update={
        "data": shared_config.data.model_copy(update={"root": str(root)}),
        "redis": shared_config.redis.model_copy(update={"url": server.url})})
    paths = run_paths(config, run_id)
    publish.run(config, run_id, spark=spark)
    yield config, run_id, paths
    server.stop()


def copy_run(paths, new_run_id: str, transform=None, spark=None):
    """A run beside the live one with the same split and models, and clean ratings changed by `transform`."""
    target = Path(paths.root).parent / new_run_id
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(paths.root, target, ignore=shutil.ignore_patterns("metrics.json", "report.html"))
    if transform is not None:
        changed = transform(spark.read.parquet(paths.clean_ratings))
        changed.write.mode("overwrite").parquet(str(target / "clean" / "ratings.parquet"))
    return new_run_id


def test_the_same_data_passes(live_run, spark):
    config, _, paths = live_run
    run_id = copy_run(paths, "drift_same")
    result = evaluate.run(config, run_id, spark=spark)
    metrics = read_json(run_paths(config, run_id).metrics)
    drift = metrics["drift"]["checks"]
    assert len(drift) == 8 and all(c["passed"] for c in drift), drift
    assert metrics["profile"]["new_user_share"] == 0 and result["publishable"]


def test_a_shifted_rating_scale_stops_publication_naming_the_drift(live_run, spark):
    config, _, paths = live_run
    run_id = copy_run(paths, "drift_shifted",
                      lambda r: r.withColumn("rating", F.greatest(F.col("rating") - 1, F.lit(1.0))), spark)
    assert evaluate.run(config, run_id, spark=spark)["publishable"] is False
    metrics = read_json(run_paths(config, run_id).metrics)
    failed = [c["gate"] for c in metrics["gates"] if not c["passed"]]
    assert any(g.startswith("drift rating distribution PSI") for g in failed), failed
    with pytest.raises(JobError, match="drift rating distribution PSI"):
        publish.run(config, run_id, spark=spark)
    report = (Path(run_paths(config, run_id).evaluation_report)).read_text()
    assert "Data drift" in report and "FAILED" in report


def test_a_flood_of_one_users_ratings_stops_publication_naming_the_drift(live_run, spark):
    config, _, paths = live_run
    movies = spark.read.parquet(paths.clean_movies)

    def flood(ratings):
        # User 1 rates every movie in the catalogue (272 ratings become 1,682).
        every_movie = movies.select(F.lit(1).alias("user_id"), "movie_id", F.lit(5.0).alias("rating"),
                                    F.lit(890_000_000).cast("long").alias("ts"))
        return ratings.where("user_id != 1").unionByName(every_movie)

    run_id = copy_run(paths, "drift_flood", flood, spark)
    assert evaluate.run(config, run_id, spark=spark)["publishable"] is False
    metrics = read_json(run_paths(config, run_id).metrics)
    failed = {c["gate"].split(" <=")[0] for c in metrics["drift"]["checks"] if not c["passed"]}
    assert failed == {"drift top 1% users' share change"}, metrics["drift"]["checks"]
    live = metrics["drift"]["live_profile"]
    assert metrics["profile"]["top_1pct_user_share"] > live["top_1pct_user_share"] + 0.01
    with pytest.raises(JobError, match="drift top 1% users' share change"):
        publish.run(config, run_id, spark=spark)
