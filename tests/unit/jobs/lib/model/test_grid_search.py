"""tune's grid search helpers: the candidates, the paired difference over shared folds, the leaderboard."""
import pytest

from jobs.lib.model.grid_search import (
    candidates,
    leaderboard_markdown,
    paired_difference,
)


def test_candidates_are_every_combination_of_the_grid():
    grid = {"rank": [8, 16], "alpha": [1.0], "reg_param": [0.1, 0.5, 1.0]}
    found = candidates(grid)
    assert len(found) == 6 and len({tuple(sorted(c.items())) for c in found}) == 6
    assert all(set(c) == set(grid) for c in found)


def test_paired_difference_sees_a_steady_gap_that_the_means_alone_would_hide():
    best = [0.30, 0.10, 0.50, 0.20]  # folds differ a lot from each other
    other = [b - 0.01 for b in best]  # but the other candidate is 0.01 behind on every fold
    result = paired_difference(other, best)
    assert result["vs_best"] == pytest.approx(-0.01) and result["vs_best_se"] == pytest.approx(0.0, abs=1e-9)
    assert paired_difference([0.2, 0.4], [0.3, 0.3]) == {"vs_best": 0.0, "vs_best_se": 0.1}
    assert paired_difference([0.2], [0.3])["vs_best_se"] == 0.0  # one fold: no spread to estimate


def test_leaderboard_markdown_has_a_row_per_candidate_and_four_decimals_for_scores():
    text = leaderboard_markdown([{"rank": 8, "ndcg@10": 0.123456}, {"rank": 16, "ndcg@10": 0.1}])
    lines = text.splitlines()
    assert lines[0] == "| rank | ndcg@10 |" and lines[1] == "|---|---|"
    assert lines[2] == "| 8 | 0.1235 |" and lines[3] == "| 16 | 0.1000 |"
