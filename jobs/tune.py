"""tune: hyperparameter search for implicit ALS, scored on validation folds carved from the training part.

The protocol split (split.seed) gives train/test; the test part is never looked at. From train, `tune.folds`
per-user splits (seeds split.seed + 1, + 2, ...) each hold out `tune.validation_ratio` of every user's training
ratings; a candidate fits on the rest and is ranked by NDCG@k on the held-out part, averaged over the folds.
A small held-out share keeps the fit part close in density to the training part the final model sees (with
a 25% hold-out, the best regularisation on validation was stronger than the best on the full training part);
several folds make up for the smaller validation sets. Writes <run>/tune/leaderboard.json and leaderboard.md;
copy the winner into conf/.

    spark-submit jobs/tune.py --run-id RUN [--grid '{"rank": [64, 128], "reg_param": [0.5, 1.0]}']
"""
from __future__ import annotations

import itertools
import json
import logging
import statistics
import time

from pyspark.sql import SparkSession

from conf.settings import Config
from jobs.common import job_main, join, run_paths, spark_session, utc_now, write_json, write_text
from jobs.evaluate import als_top_n
from jobs.ranking import mean_ranking_metrics, per_user_ranking_metrics
from jobs.train import fit_implicit, stratified_split

log = logging.getLogger("reco.tune")

DEFAULT_GRID = {
    "rank": [128],
    "reg_param": [0.5, 1.0],
    "alpha": [1.0, 3.0],
    "max_iter": [15],
    "confidence": ["linear"],
    "user_activity_exponent": [0.0, 0.5],
    "item_popularity_exponent": [0.0, 0.5],
}


def candidates(grid: dict) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def run(config: Config, run_id: str, spark: SparkSession | None = None, grid: str | None = None) -> dict:
    paths = run_paths(config, run_id)
    spark = spark or spark_session(config, "tune")
    k = config.evaluate.k
    ratings = spark.read.parquet(paths.clean_ratings)
    train, _test = stratified_split(ratings, config.split.train_ratio, config.split.seed)
    folds = [tuple(part.cache() for part in stratified_split(train, 1.0 - config.tune.validation_ratio,
                                                                 config.split.seed + fold))
             for fold in range(1, config.tune.folds + 1)]
    board = []
    for params in candidates(json.loads(grid) if grid else DEFAULT_GRID):
        settings = config.als.implicit.model_copy(update=params)
        scores, seconds = [], 0.0
        for fit, validation in folds:
            started = time.perf_counter()
            model = fit_implicit(fit, settings, config.als.checkpoint_interval)
            seconds += time.perf_counter() - started
            scores.append(mean_ranking_metrics(per_user_ranking_metrics(
                als_top_n(model, fit, validation, k), validation, k), k))
        board.append({**params, **{name: statistics.mean(s[name] for s in scores)
                                   for name in (f"ndcg@{k}", f"precision@{k}")},
                      "fold_ndcg": [round(s[f"ndcg@{k}"], 4) for s in scores],
                      "fit_seconds": round(seconds / len(folds), 1)})
        log.info("%s -> ndcg@%d %.4f (%.0f s per fit)", params, k, board[-1][f"ndcg@{k}"], board[-1]["fit_seconds"])
    board.sort(key=lambda row: -row[f"ndcg@{k}"])
    folder = join(paths.root, "tune")
    write_json(join(folder, "leaderboard.json"), {"run_id": run_id, "k": k, "scored_on": "validation folds of "
                                                  "the training part", "validation_ratio": config.tune.validation_ratio,
                                                  "folds": config.tune.folds, "leaderboard": board, "tuned_at": utc_now()})
    header = list(board[0])
    write_text(join(folder, "leaderboard.md"), "\n".join(
        [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"] +
        [f"| {' | '.join(f'{row[h]:.4f}' if isinstance(row[h], float) and h.startswith(('ndcg', 'prec')) else str(row[h]) for h in header)} |"
         for row in board]) + "\n")
    for fit, validation in folds:
        fit.unpersist()
        validation.unpersist()
    return {"best": board[0], "leaderboard": join(folder, "leaderboard.md")}


def _arguments(parser) -> None:
    parser.add_argument("--grid", help="JSON object of parameter -> list of values (default: a built-in grid)")


def main() -> None:
    job_main("tune", __doc__.splitlines()[0], run, _arguments)


if __name__ == "__main__":
    main()
