"""The GUIDE protocol's ranking metrics, computed by hand."""
import math

import pytest

from jobs.lib.evaluation.metrics import mean_ranking_metrics, per_user_ranking_metrics


def test_ranking_metrics_match_hand_computation(spark):
    recs = spark.createDataFrame([(1, 1, 10), (1, 2, 20), (1, 3, 30), (2, 1, 40), (2, 2, 50), (2, 3, 60)],
                                 "user_id int, rank int, movie_id int")
    truth = spark.createDataFrame([(1, 20), (1, 99), (2, 40), (2, 60), (3, 70)], "user_id int, movie_id int")
    per_user = {r["user_id"]: r for r in per_user_ranking_metrics(recs, truth, 3).collect()}
    one, two, three = per_user[1], per_user[2], per_user[3]
    assert one["precision"] == pytest.approx(1 / 3) and one["recall"] == pytest.approx(1 / 2)
    assert one["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert one["ap"] == pytest.approx((1 / 2) / 2)
    assert two["precision"] == pytest.approx(2 / 3) and two["recall"] == pytest.approx(1.0)
    assert two["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert two["ap"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert (three["precision"], three["recall"], three["ndcg"], three["ap"]) == (0, 0, 0, 0)  # no recs: zeros
    means = mean_ranking_metrics(per_user_ranking_metrics(recs, truth, 3), 3)
    assert means["users_evaluated"] == 3
    assert means["precision@3"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


