"""The whole batch chain on MovieLens 100K (the spark-submit path of every job: tests/dags/test_dag.py)."""
import os
from pathlib import Path

from pyspark.sql import functions as F

from jobs import recommend
from schemas.storage import read_json
from tests.support import assert_same_rankings


def test_als_beats_popularity_on_the_guide_protocol(pipeline_run):
    config, run_id, paths, _ = pipeline_run
    metrics = read_json(paths.metrics)
    als, pop = metrics["models"]["als"], metrics["models"]["popularity"]
    for model in (als, pop):
        for key in ("precision@10", "recall@10", "ndcg@10", "map@10", "rmse", "mae", "coverage"):
            assert isinstance(model[key], float), key
    assert als["ndcg@10"] > 0.35
    assert als["ndcg@10"] > pop["ndcg@10"] and als["precision@10"] > pop["precision@10"]
    assert 0.85 < als["rmse"] < 1.0 and als["mae"] < als["rmse"]
    assert als["rmse"] < pop["rmse"]
    assert als["coverage"] > pop["coverage"]
    assert metrics["publishable"] is True
    assert metrics["run_id"] == run_id and metrics["dataset"] == "ml-100k" and metrics["k"] == 10
    assert metrics["counts"]["train"] + metrics["counts"]["test"] == metrics["counts"]["all"] == 100_000
    assert metrics["counts"]["test_users"] == als["users_evaluated"] == 943
    assert metrics["params"]["implicit"]["rank"] == config.als.implicit.rank
    assert set(als["by_activity"]) <= {"1-19", "20-49", "50-99", "100-249", "250+"}
    assert sum(b["users"] for b in als["by_activity"].values()) == 943


def test_explicit_model_blends_in_the_implicit_score(pipeline_run):
    _, _, paths, _ = pipeline_run
    residual, implicit, _intercept = read_json(paths.train_report)["explicit_blend_weights"]
    # fit on held-out ratings: the residual model keeps its weight, and movies the implicit model expects a user to
    # rate are rated higher
    assert residual > 0.5 and implicit > 0.05
    assert not (Path(paths.models) / "prod" / "explicit").exists()  # evaluation only


def test_recommendation_outputs(pipeline_run, spark):
    config, _, paths, _ = pipeline_run
    recs = spark.read.parquet(paths.user_recs)
    assert recs.select("user_id").distinct().count() == 943
    assert recs.groupBy("user_id").count().where("count != 50").count() == 0
    rated = spark.read.parquet(paths.clean_ratings)
    assert recs.join(rated, ["user_id", "movie_id"]).count() == 0  # never recommends what the user rated
    # `because` names a movie the user rated, for nearly every recommendation (none only where no rating raised
    # its score).
    because = recs.where("because_id IS NOT NULL")
    assert because.count() >= 0.95 * recs.count()
    assert because.join(rated.select("user_id", F.col("movie_id").alias("because_id")), ["user_id", "because_id"],
                        "left_anti").count() == 0
    neighbors = spark.read.parquet(paths.item_neighbors)
    assert neighbors.where("movie_id = neighbor_id").count() == 0
    assert neighbors.where("score > 1.0001 OR score < -1.0001").count() == 0  # cosine
    popular = spark.read.parquet(paths.popular)
    assert popular.where("genre = '_all'").count() == max(config.recommend.popular_n, config.recommend.filter_pool)
    top = popular.where("genre = '_all' AND rank = 1").first()["movie_id"]
    assert top == 50  # Star Wars is the most rated movie of ML-100K
    latest = Path(config.data_root) / "runs" / "latest"
    assert latest.is_symlink() and latest.resolve() == Path(paths.root).resolve()
    report = read_json(paths.clean_report)
    assert report["ratings_in"] == report["ratings_out"] == 100_000
    assert report["movies_without_genre"] == 2  # the two 'unknown' movies of ML-100K


def test_rerun_of_a_job_overwrites_only_its_own_outputs(pipeline_run, spark):
    """recommend again, this time scoring on the executors (recommend.driver_max_scores 0): the same lists as
    the pipeline's run, which scored ML-100K's small model in the driver."""
    config, run_id, paths, _ = pipeline_run
    assert read_json(paths.recommend_report)["on_driver"] == {"user_recs": True, "item_neighbors": True}

    def lists(name):
        ranked = {}
        for row in sorted(spark.read.parquet(getattr(paths, name)).collect(), key=lambda r: r[:2]):
            ranked.setdefault(row[0], []).append((row[2], row[3]))
        return ranked
    on_driver = {name: lists(name) for name in ("user_recs", "item_neighbors")}
    reasons = lambda: {(r.user_id, r.movie_id): r.because_id  # noqa: E731
                       for r in spark.read.parquet(paths.user_recs).collect()}
    reasons_on_driver = reasons()
    before = {p: p.stat().st_mtime for p in Path(paths.root).rglob("*") if p.is_file()}
    executors = config.model_copy(update={"recommend": config.recommend.model_copy(update={"driver_max_scores": 0})})
    recommend.run(executors, run_id, spark=spark)
    after = {p: p.stat().st_mtime for p in Path(paths.root).rglob("*") if p.is_file()}
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed and all("recommend" in p.parts for p in changed)
    assert sorted(os.listdir(Path(config.data_root) / "runs")) == sorted(["latest", run_id])
    assert read_json(paths.recommend_report)["on_driver"] == {"user_recs": False, "item_neighbors": False}
    for name, ranked in on_driver.items():  # near-ties may swap: the two paths' BLAS kernels round differently
        assert_same_rankings(lists(name), ranked, name=name)
    assert sum(map(len, on_driver["user_recs"].values())) == 943 * 50
    # `because` of the lists scored on the executors names the same movies, near-ties apart.
    reasons_on_executors = reasons()
    common = reasons_on_driver.keys() & reasons_on_executors.keys()
    assert sum(reasons_on_driver[p] == reasons_on_executors[p] for p in common) >= 0.99 * len(common) > 0.9 * 943 * 50


def test_evaluation_report_is_written(pipeline_run):
    _, run_id, paths, _ = pipeline_run
    page = Path(paths.evaluation_report).read_text()
    assert f"Run {run_id}" in page
    assert page.count("data:image/png;base64,") >= 2  # against the baseline, by activity bucket
    assert "FAILED" not in page


def test_tune_scores_candidates_on_validation_folds_of_train(pipeline_run, spark):
    from conf.settings import TuneSettings
    from jobs import tune
    config, run_id, paths, _ = pipeline_run
    config = config.model_copy(update={"tune": TuneSettings(folds=2)})
    result = tune.run(config, run_id, spark=spark,
                      grid='{"rank": [8], "max_iter": [3], "reg_param": [0.1, 5.0], "confidence": ["linear"]}')
    saved = read_json(str(Path(paths.root) / "tune" / "leaderboard.json"))
    board = saved["leaderboard"]
    assert saved["folds"] == 2
    assert len(board) == 2 and board[0]["ndcg@10"] >= board[1]["ndcg@10"] > 0
    assert all(len(row["fold_ndcg"]) == 2 and min(row["fold_ndcg"]) > 0 for row in board)
    # each candidate's mean difference to the best over the shared folds
    fold_differences = [a - b for a, b in zip(board[1]["fold_ndcg"], board[0]["fold_ndcg"])]
    assert board[0]["vs_best"] == 0 and board[1]["vs_best"] < 0
    assert abs(board[1]["vs_best"] - sum(fold_differences) / 2) < 2e-4 and board[1]["vs_best_se"] >= 0
    assert result["best"] == board[0]
    assert Path(result["leaderboard"]).read_text().startswith("| ")
