"""Fold-in is MLlib's own user step: users the shared ML-100K run trained on, folded in with exactly their
training preferences against the production model's item factors, get back their stored vectors."""
import numpy as np
from pyspark.sql import functions as F

from jobs.lib.model.als import implicit_preferences
from jobs.lib.model.scoring import factors_of
from jobs.lib.runtime.storage import join, read_table
from jobs.lib.model.fold_in import ItemFactors, Preferences, fold_in, top_n


def test_folding_in_a_trained_user_reproduces_their_vector_and_their_list(pipeline_run, spark):
    config, _, paths, _ = pipeline_run
    settings = config.als.implicit
    prod = paths.model("prod", "implicit")
    users, items = (factors_of(read_table(join(prod, part))) for part in ("userFactors", "itemFactors"))
    catalogue = ItemFactors(items.ids, items.matrix)
    prefs = implicit_preferences(spark.read.parquet(paths.clean_ratings), settings).toPandas()
    rng = np.random.default_rng(7)
    chosen = rng.choice(users.ids, 50, replace=False)
    worst = 0.0
    for user in chosen:
        theirs = prefs[prefs.user_id == user]
        folded = fold_in(catalogue, theirs.movie_id.to_numpy(), theirs.rating.to_numpy(), settings.alpha,
                         settings.reg_param)
        stored = users.matrix[np.searchsorted(users.ids, user)]
        worst = max(worst, float(np.linalg.norm(folded - stored) / np.linalg.norm(stored)))
    assert worst < 1e-4, worst  # float32 precision (MLlib solves in float64, stores float32)
    # Changed preferences move the vector: the test could fail.
    theirs = prefs[prefs.user_id == chosen[0]]
    moved = fold_in(catalogue, theirs.movie_id.to_numpy()[1:], theirs.rating.to_numpy()[1:], settings.alpha,
                    settings.reg_param)
    assert np.linalg.norm(moved - users.matrix[np.searchsorted(users.ids, chosen[0])]) > 1e-3
    # Its list, minus what they rated, is the published list.
    published = spark.read.parquet(paths.user_recs).where(F.col("user_id") == int(chosen[0])).orderBy("rank")
    expected = [row.movie_id for row in published.collect()][:10]
    rated = set(theirs.movie_id.tolist())
    vector = users.matrix[np.searchsorted(users.ids, chosen[0])]
    assert [movie for movie, _ in top_n(catalogue, vector, 10, rated)] == expected


def test_the_speed_layers_preferences_are_trains(pipeline_run, spark):
    """Preferences built by the speed layer from the run's files (jobs/lib/model/fold_in.Preferences, with the
    popularity scaling of the default settings) fold a trained user back onto their stored vector."""
    config, _, paths, _ = pipeline_run
    settings = {**config.als.implicit.model_dump(), "click_weight": config.events.click_weight}
    assert settings["item_popularity_exponent"]  # the scaling is exercised
    prod = paths.model("prod", "implicit")
    users, items = (factors_of(read_table(join(prod, part))) for part in ("userFactors", "itemFactors"))
    catalogue = ItemFactors(items.ids, items.matrix)
    preferences = Preferences.from_tables(read_table(paths.clean_ratings).to_pandas(), None, settings)
    for user in users.ids[:: max(1, len(users.ids) // 20)]:
        movies, prefs = preferences.scaled(preferences.of(int(user)))
        folded = fold_in(catalogue, movies, prefs, settings["alpha"], settings["reg_param"])
        stored = users.matrix[np.searchsorted(users.ids, user)]
        assert np.linalg.norm(folded - stored) / np.linalg.norm(stored) < 1e-4, user
