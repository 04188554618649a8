"""Helpers of the hyperparameter search (jobs/tune.py): the grid's candidates, paired differences over shared
folds, and the leaderboard as markdown."""
from __future__ import annotations

import itertools
import statistics


def paired_difference(scores: list[float], best: list[float]) -> dict:
    """Mean per-fold difference to the best candidate and its standard error: the folds are shared, so the
    difference is far less noisy than the two means."""
    differences = [a - b for a, b in zip(scores, best)]
    spread = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else 0.0
    return {"vs_best": round(statistics.mean(differences), 4), "vs_best_se": round(spread, 4)}


def candidates(grid: dict) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def leaderboard_markdown(board: list[dict]) -> str:
    header = list(board[0])

    def cell(row: dict, name: str) -> str:
        value = row[name]
        return f"{value:.4f}" if isinstance(value, float) and name.startswith(("ndcg", "prec")) else str(value)
    return "\n".join([f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
                     + [f"| {' | '.join(cell(row, h) for h in header)} |" for row in board]) + "\n"
