"""The diversity re-ranking the service applies to a list (`diversity` in a request) and the measure the quality
protocol reports it by (jobs/lib/evaluation/protocols.py): one definition, over the API's items (their genres)."""

from __future__ import annotations


def genre_similarity(a: frozenset, b: frozenset) -> float:
    """Jaccard similarity of two movies' genres (0 for two movies without any)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def diversify(items: list[dict], k: int, diversity: float) -> list[dict]:
    """The first k of `items` re-ranked by maximal marginal relevance: each next item maximises
    (1 - diversity) * relevance - diversity * (its largest genre similarity to the items already chosen), with
    relevance falling linearly with the published rank (1 for the first). diversity 0 keeps the order."""
    if diversity <= 0 or len(items) <= 1:
        return items[:k]
    n = len(items)
    genres = [frozenset(item.get("genres") or ()) for item in items]
    closest = [0.0] * n
    left, chosen = list(range(n)), list[int]()
    while left and len(chosen) < k:
        best = max(left, key=lambda i: ((1 - diversity) * (1 - i / n) - diversity * closest[i], -i))
        chosen.append(best)
        left.remove(best)
        for i in left:
            closest[i] = max(closest[i], genre_similarity(genres[i], genres[best]))
    return [items[i] for i in chosen]


def intra_list_diversity(items: list[dict]) -> float:
    """1 - the mean genre similarity over the list's pairs (0: all alike; the quality benchmark's measure)."""
    genres = [frozenset(item.get("genres") or ()) for item in items]
    pairs = [(a, b) for i, a in enumerate(genres) for b in genres[i + 1 :]]
    return 1 - sum(genre_similarity(a, b) for a, b in pairs) / len(pairs) if pairs else 0.0
