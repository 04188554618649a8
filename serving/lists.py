"""What a handler does to a published list before answering: filters (genres, years), exclusions, the fill-up
that keeps an answer k long, the diversity re-ranking, and the merge of neighbour lists for a person the version
does not know yet. Pure functions over the API's items (schemas/items.py): at most a few published lists per
request, no I/O."""

from __future__ import annotations

import heapq
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from schemas import redis_keys as rk


@dataclass(frozen=True)
class Filters:
    """What an answer may hold: any of `genres` (none: every genre), a year within [year_min, year_max]."""

    genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    _genre_set: frozenset = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_genre_set", frozenset(self.genres))

    @property
    def active(self) -> bool:
        return bool(self.genres) or self.year_min is not None or self.year_max is not None

    def keeps(self, item: dict) -> bool:
        if self._genre_set and not self._genre_set.intersection(item.get("genres") or ()):
            return False
        if self.year_min is None and self.year_max is None:
            return True
        year = item.get("year")
        return (
            year is not None
            and (self.year_min is None or year >= self.year_min)
            and (self.year_max is None or year <= self.year_max)
        )

    def pools(self, kind: str = "popular") -> list[str]:
        """The lists a fill-up draws from (popular, or new_movies): one per genre asked for, else the whole
        catalogue's."""
        return [rk.suffix(kind, genre) for genre in self.genres] or [rk.suffix(kind, rk.ALL_GENRES)]


NO_FILTERS = Filters()


def candidates(items, excluded: AbstractSet[int], filters: Filters) -> list[dict]:
    """The items of a list that pass the filters and are not excluded, in order."""
    if not excluded and not filters.active:
        return list(items)
    return [item for item in items if item["movie_id"] not in excluded and filters.keeps(item)]


def fill(
    chosen: list[dict], pools: list, excluded: AbstractSet[int], filters: Filters, k: int, mark: bool = True
) -> list[dict]:
    """`chosen` topped up to k from the popular lists `pools` (most rated first, merged when several genres were
    asked for), leaving out what is excluded or chosen already; the added items carry "filled": true when
    `mark`."""
    if len(chosen) >= k:
        return chosen[:k]
    taken = {item["movie_id"] for item in chosen} | excluded
    answer = list(chosen)
    if len(pools) == 1:
        merged = pools[0] or ()
    else:  # each pool is most rated first: merged by the number of ratings (its score)
        merged = heapq.merge(*(pool or () for pool in pools), key=lambda item: -item["score"])
    for item in merged:
        if item["movie_id"] in taken or not filters.keeps(item):
            continue
        taken.add(item["movie_id"])
        answer.append({**item, "filled": True} if mark else item)
        if len(answer) == k:
            break
    return answer


def with_new(items: list[dict], picks, excluded: AbstractSet[int], filters: Filters, k: int, slots: int) -> list[dict]:
    """Up to `slots` of the k places given to new movies (nobody rated them when the version was built) from the
    person's `picks`, marked "new": true, after the first k - slots of `items`."""
    if not picks:
        return items
    shown = {item["movie_id"] for item in items}
    chosen = [
        {**pick, "new": True}
        for pick in picks
        if pick["movie_id"] not in excluded and pick["movie_id"] not in shown and filters.keeps(pick)
    ][:slots]
    return items[: k - len(chosen)] + chosen if chosen else items


def merge_neighbours(lists: list, weights: list[float], exclude: AbstractSet[int]) -> list[dict]:
    """One list from several neighbour lists: a movie scores the sum of (its similarity to a seed x the seed's
    weight), best first, ties to the lower movie id; only movies with a positive score are kept, and none in
    `exclude`."""
    scored: dict[int, tuple[float, dict]] = {}
    for neighbours, weight in zip(lists, weights):
        for item in neighbours or ():
            movie = item["movie_id"]
            if movie in exclude:
                continue
            total = scored.get(movie, (0.0, item))[0] + item["score"] * weight
            scored[movie] = (total, item)
    ranked = sorted(((m, v) for m, v in scored.items() if v[0] > 0), key=lambda pair: (-pair[1][0], pair[0]))
    return [{**item, "score": round(total, 6)} for _, (total, item) in ranked]
