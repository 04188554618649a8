"""Fold-in is MLlib's own user step, and train's preferences are the core's: users the shared ML-100K run
trained on, folded in from the run's fold-in bundle (what the speed layer reads) against the production model's
item factors, get back their stored vectors; and train's Spark preferences equal the core rules' on the same
data, for every confidence mapping, with clicks and both scalings."""
import numpy as np
import pytest
from pyspark.sql import functions as F

from conf.settings import ImplicitALSSettings
from jobs.lib.model.als import click_preferences, implicit_preferences
from jobs.lib.model.scoring import factors_of
from schemas import bundle
from schemas.preferences import TrainingPreferences, training_pairs
from schemas.ranking import fold_in
from schemas.storage import join, read_table


def test_folding_in_a_trained_user_from_the_bundle_reproduces_their_vector_and_their_list(pipeline_run, spark):
    config, _, paths, _ = pipeline_run
    prod = paths.model("prod", "implicit")
    users = factors_of(read_table(join(prod, "userFactors")))
    model = bundle.read(paths.fold_in_bundle)
    assert model.settings["item_popularity_exponent"]  # the scaling is exercised
    rng = np.random.default_rng(7)
    chosen = rng.choice(users.ids, 50, replace=False)
    worst = 0.0
    for user in chosen:
        movies, prefs = model.training.scaled(model.training.of(int(user)))
        folded = fold_in(model.items, movies, prefs, model.settings["alpha"], model.settings["reg_param"])
        stored = users.matrix[np.searchsorted(users.ids, user)]
        worst = max(worst, float(np.linalg.norm(folded.vector - stored) / np.linalg.norm(stored)))
    assert worst < 1e-4, worst  # float32 precision (MLlib solves in float64, stores float32)
    # Changed preferences move the vector: the test could fail.
    movies, prefs = model.training.scaled(model.training.of(int(chosen[0])))
    moved = fold_in(model.items, movies[1:], prefs[1:], model.settings["alpha"], model.settings["reg_param"])
    assert np.linalg.norm(moved.vector - users.matrix[np.searchsorted(users.ids, chosen[0])]) > 1e-3
    # Its list, minus what they rated, is the published list.
    published = spark.read.parquet(paths.user_recs).where(F.col("user_id") == int(chosen[0])).orderBy("rank")
    expected = [row.movie_id for row in published.collect()][:10]
    vector = users.matrix[np.searchsorted(users.ids, chosen[0])]
    assert [m for m, _ in model.items.top_n(vector, 10, set(model.training.of(int(chosen[0]))))] == expected


@pytest.mark.parametrize("confidence", ["linear", "log", "binary", "threshold"])
def test_trains_spark_preferences_are_the_cores(spark, confidence):
    rng = np.random.default_rng(5)
    n = 400
    users, movies = rng.integers(1, 30, n), rng.integers(1, 60, n)
    ratings = rng.choice([0.5, 1.0, 2.5, 3.0, 3.5, 4.0, 5.0], n)
    c_users, c_movies, clicks = rng.integers(1, 30, 80), rng.integers(1, 60, 80), rng.integers(1, 4, 80)
    rated = spark.createDataFrame([(int(u), int(m), float(r)) for u, m, r in zip(users, movies, ratings)],
                                  "user_id int, movie_id int, rating double").dropDuplicates(["user_id", "movie_id"])
    clicked = spark.createDataFrame([(int(u), int(m), int(c)) for u, m, c in zip(c_users, c_movies, clicks)],
                                    "user_id int, movie_id int, clicks long").dropDuplicates(["user_id", "movie_id"])
    settings = ImplicitALSSettings(confidence=confidence, threshold=3.5, user_activity_exponent=0.5,
                                   item_popularity_exponent=0.25)
    spark_prefs = implicit_preferences(rated, settings, click_preferences(clicked, rated, 2.0)).toPandas()
    r, c = rated.toPandas(), clicked.toPandas()
    rules = {**settings.model_dump(), "click_weight": 2.0}
    core = TrainingPreferences.from_pairs(*training_pairs(r.user_id.to_numpy(), r.movie_id.to_numpy(),
                                                          r.rating.to_numpy(), c.user_id.to_numpy(),
                                                          c.movie_id.to_numpy(), c.clicks.to_numpy(), rules), rules)
    expected = {}
    for user in core.users.tolist():
        movie_ids, prefs = core.scaled(core.of(user))
        expected.update({(user, m): p for m, p in zip(movie_ids.tolist(), prefs.tolist())})
    got = {(u, m): p for u, m, p in spark_prefs.itertuples(index=False)}
    assert got.keys() == expected.keys()
    assert all(np.isclose(got[pair], expected[pair], rtol=1e-6) for pair in got)


def test_one_fit_mode_serves_the_evaluation_model_with_the_evaluated_people_folded_in(pipeline_run, spark,
                                                                                      tmp_path):
    """split.evaluation_people: only that many people are split; the production model is the evaluation model
    (everyone else's vectors as fitted) with the evaluated people's vectors folded in from all their ratings,
    not only the training part the fit saw."""
    import shutil
    from pathlib import Path

    from jobs import train
    from jobs.lib.runtime.run_layout import run_paths
    config, run_id, paths, _ = pipeline_run
    als = config.als.model_copy(update={
        "implicit": config.als.implicit.model_copy(update={"rank": 8, "max_iter": 3}),
        "explicit": config.als.explicit.model_copy(update={"max_iter": 2, "implicit_feature": False})})
    one_fit = config.model_copy(update={"als": als, "split": config.split.model_copy(
        update={"evaluation_people": 200}), "data": config.data.model_copy(update={"root": str(tmp_path)})})
    mine = run_paths(one_fit, "one_fit")
    for part in ("ingest", "clean"):
        shutil.copytree(Path(paths.root) / part, Path(mine.root) / part)
    report = train.run(one_fit, "one_fit", spark=spark)
    assert 0.15 < report["evaluated_people_share"] < 0.25 and "prod_implicit_s" not in report["fit_seconds"]
    test = spark.read.parquet(mine.split_test).toPandas()
    evaluated = np.unique(test.user_id.to_numpy())
    assert 150 <= len(evaluated) <= 250  # a seeded random sample of about 200 of 943
    train_part = spark.read.parquet(mine.split_train).toPandas()
    ratings = spark.read.parquet(mine.clean_ratings).toPandas()
    assert len(train_part) + len(test) == len(ratings) == 100_000
    others = ratings[~ratings.user_id.isin(evaluated)]
    assert len(train_part[~train_part.user_id.isin(evaluated)]) == len(others)  # everyone else trains on all
    eval_users = factors_of(read_table(join(mine.model("eval", "implicit"), "userFactors")))
    prod_users = factors_of(read_table(join(mine.model("prod", "implicit"), "userFactors")))
    assert (prod_users.ids == eval_users.ids).all() and len(prod_users.ids) == 943
    unchanged = ~np.isin(prod_users.ids, evaluated)
    assert (prod_users.matrix[unchanged] == eval_users.matrix[unchanged]).all()
    assert np.abs(prod_users.matrix[~unchanged] - eval_users.matrix[~unchanged]).max() > 1e-3
    # An evaluated person's production vector is their fold-in from every rating (the bundle's preferences).
    items = factors_of(read_table(join(mine.model("prod", "implicit"), "itemFactors")))
    from jobs.lib.model.fold_in import training_preferences
    from schemas.ranking import ItemFactors
    training = training_preferences(one_fit, mine)
    catalogue = ItemFactors(items.ids, items.matrix)
    implicit = one_fit.als.implicit
    for person in evaluated[:5]:
        movies, prefs = training.scaled(training.of(int(person)))
        assert len(movies) == (ratings.user_id == person).sum()  # all of them, held-out part included
        known = np.isin(movies, items.ids)  # a movie only evaluated people rated may be unknown to the fit
        expected = fold_in(catalogue, movies[known], prefs[known], implicit.alpha, implicit.reg_param).vector
        assert np.allclose(prod_users.matrix[np.searchsorted(prod_users.ids, person)], expected, atol=1e-6)
