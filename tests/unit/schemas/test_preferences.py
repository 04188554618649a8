"""The preference rules (schemas/preferences.py) on tiny inputs worked out by hand; tests/jobs/test_fold_in.py
holds train's Spark version of them to these."""
import numpy as np

from schemas.preferences import (
    TrainingPreferences,
    person_values,
    rating_values,
    training_pairs,
)

SETTINGS = {"confidence": "linear", "threshold": 3.5, "click_weight": 2.0, "user_activity_exponent": 0.0,
            "item_popularity_exponent": 1.0}


def test_ratings_and_clicks_map_and_scale_as_train_does():
    assert np.allclose(rating_values([1, 4], "log", 0), np.log1p([1, 4]))
    assert np.isnan(rating_values([3.0], "threshold", 3.5)[0])
    # (1, 10) was rated: the click on it counts for nothing; (2, 20) is a click only.
    pairs = training_pairs(np.array([1, 1, 2]), np.array([10, 20, 10]), np.array([4.0, 2.0, 5.0]),
                           np.array([2, 1]), np.array([20, 10]), np.array([3, 7]), SETTINGS)
    preferences = TrainingPreferences.from_pairs(*pairs, SETTINGS)
    assert preferences.of(2) == {10: 5.0, 20: 6.0} and preferences.of(3) == {}
    assert preferences.rated_by(2) == {10} and preferences.rated_by(1) == {10, 20}
    movies, prefs = preferences.scaled(preferences.of(1))  # both movies have 2 positives, the mean is 2
    assert dict(zip(movies.tolist(), prefs.tolist())) == {10: 4.0, 20: 2.0}


def test_a_persons_events_join_their_training_preferences_by_the_same_rules():
    training = {10: 4.0, 20: 2.0}
    values = person_values(training, set(training), ratings={20: 5.0, 30: 3.0}, clicks={10: 2, 40: 1},
                           settings={**SETTINGS, "confidence": "threshold"})
    # 20 re-rated 5 replaces 2; 30 rated 3 is below the threshold: no preference; the click on 10 counts for
    # nothing (it has a training preference), the one on 40 counts click_weight.
    assert values == {10: 4.0, 20: 5.0, 40: 2.0}
