"""The JSON API (blueprint `api`): recommendations, similar and popular movies, new movies, movie details and
search, version, health and readiness.

Why a movie is in a person's answer, or not, step by step (each step is one module):
1. the version they are answered from: the live one, or their experiment arm's (serving/versions.py,
   schemas/experiments.py);
2. their list: the speed layer's fold-in for that version when there is one, else the version's published
   list (serving/people.py: what they did since the version), else a fallback (movies like the ones they rated
   since, or the popular ones);
3. what is left out: what they have seen (rated or dismissed: schemas/people.py), before the version (left out
   of the published list, and its `seen` list) or since (the intake's `excluded` set), and what they asked to
   exclude;
4. filters (genres, years) and the fill-up that keeps k, the diversity re-ranking, the places given to new
   movies (serving/lists.py).
A handler does key lookups (mostly from the worker's caches) and a pass over at most a few lists."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app

from schemas import redis_keys as rk
from schemas.diversity import diversify
from schemas.experiments import arm_of, public_view
from schemas.movielens import DATASETS
from serving.experiments import experiment_fields
from serving.http import (
    MAX_QUERY_CHARS,
    BadRequest,
    answer,
    json_response,
    parse_diversity,
    parse_exclude,
    parse_filters,
    parse_for_user,
    parse_id,
    parse_k,
    query_args,
)
from serving.lists import (
    Filters,
    candidates,
    fill,
    merge_neighbours,
    with_new,
)
from serving.observability import EXPERIMENT_FALLBACKS, FALLBACKS, SHORTENED
from serving.people import People
from serving.versions import Versions

api = Blueprint("api", __name__)


def versions() -> Versions:
    return current_app.extensions["reco_versions"]


def people() -> People:
    return current_app.extensions["reco_people"]


def limits() -> dict:
    return current_app.config["RECO_LIMITS"]


@dataclass(frozen=True)
class Asked:
    """What a request asks of a list: k items passing the filters, none excluded, re-ranked for diversity."""

    k: int
    filters: Filters
    excluded: frozenset[int]
    diversity: float = 0.0


def items_to_show(
    version: str, items, asked: Asked, endpoint: str, seen_by: int | None = None, fill_up: bool = True
) -> list[dict]:
    """The first k items of a list that pass the filters and are not excluded (re-ranked for diversity), topped
    up to k from the popular lists of the genres asked for when fewer are left (`fill_up`), without what
    `seen_by`, a person the version knows, had seen. Counted when the answer still falls short of k."""
    shown = diversify(candidates(items, asked.excluded, asked.filters), asked.k, asked.diversity)
    if len(shown) < asked.k and fill_up:
        suffixes = asked.filters.pools() + ([rk.suffix("seen", seen_by)] if seen_by is not None else [])
        values = versions().get_in_version(version, suffixes)
        seen = set(values.pop() or ()) if seen_by is not None else set()
        shown = fill(shown, values, asked.excluded | seen, asked.filters, asked.k)
    if len(shown) < asked.k:
        SHORTENED.labels(endpoint=endpoint).inc()
    return shown


def _filter_fields(filters: Filters) -> dict:
    return {"genre": ",".join(filters.genres) or None, "year_min": filters.year_min, "year_max": filters.year_max}


# ---------------------------------------------------------------- endpoints


def parse_recommendations_request(user_id: str) -> tuple[int, int, Filters, set[int], float]:
    """A person's recommendations request as its URL asks it: (user id, k, filters, the movies it excludes,
    diversity); BadRequest for anything out of bounds."""
    uid = parse_id(user_id, "user_id")
    query = query_args()
    return uid, parse_k(query, limits()["top_n"]), parse_filters(query), parse_exclude(query), parse_diversity(query)


@api.get("/v1/users/<user_id>/recommendations")
def user_recommendations(user_id: str):
    uid, k, filters, asked_out, diversity = parse_recommendations_request(user_id)
    version, (published,), experiment, arm = versions().lookup_for(uid, rk.suffix("user", uid))
    fields, exposure = experiment_fields(experiment, arm, version, uid, "recommendations")
    payload = {"user_id": uid, "version": version, **fields}
    fallback = None
    since = people().since_version(uid)
    asked = Asked(k, filters, since.excluded | asked_out, diversity)
    known = uid if published is not None else None  # a person the version has a `seen` list for
    if since.fresh is not None and since.fresh.version == version:  # folded in against this very version
        fresh = versions().fresh_items(version, since.fresh.packed)
        items = items_to_show(version, fresh, asked, "recommendations", known)
        payload.update(source="fold_in", fold_in={"events": since.fresh.events, "updated_at": since.fresh.updated_at})
    elif published is not None:
        items = items_to_show(version, published, asked, "recommendations", known)
        payload["source"] = "version"
    else:
        items, fallback, reason = fallback_items(version, asked, since.latest)
        payload["source"] = fallback
        FALLBACKS.labels(reason=fallback).inc()
        if experiment:
            EXPERIMENT_FALLBACKS.labels(experiment["id"], arm, fallback).inc()
        payload.update(fallback=fallback, reason=reason)
    slots = current_app.config["RECO_NEW_SLOTS"]
    if known is not None and k > 1 and slots:  # a person the version knows: new movies near their taste
        picks = versions().get_in_version(version, [rk.suffix("new", uid)])[0]
        items = with_new(items, picks, asked.excluded, filters, k, min(slots, k - 1))
    payload.update(
        **_filter_fields(filters), diversity=diversity, filled=sum("filled" in i for i in items), items=items
    )
    if exposure is not None:
        exposure["items"], exposure["fallback"] = [item["movie_id"] for item in items], fallback
    return answer(payload)


def fallback_items(version: str, asked: Asked, latest: tuple[tuple[int, float], ...]) -> tuple[list[dict], str, str]:
    """(items, the fallback's name, why) for a person the version does not know. With ratings sent since it was
    built: the neighbours of the movies they rated highest most recently, merged (topped up from the popular
    lists); otherwise the version's popular lists. Neither holds what they have seen."""
    if latest:
        seeds = sorted(latest, key=lambda pair: -pair[1])  # highest rated first; stable: newest first among equals
        meta, *lists = versions().get_in_version(
            version, [rk.suffix("meta"), *[rk.suffix("similar", m) for m, _ in seeds]]
        )
        spec = DATASETS.get((meta or {}).get("dataset") or "")
        middle = sum(spec.rating_scale) / 2 if spec else 3.0
        # A movie like one they loved rises, one like a movie they disliked sinks.
        weights = [rating - middle for _, rating in seeds]
        left_out = asked.excluded | {m for m, _ in seeds}
        merged = merge_neighbours(lists, weights, left_out)
        if candidates(merged, set(), asked.filters):
            items = items_to_show(
                version, merged, Asked(asked.k, asked.filters, left_out, asked.diversity), "recommendations"
            )
            return (
                items,
                "similar_to_recent",
                (
                    f"not in version {version} yet: movies like the ones you "
                    f"rated since (your {len(seeds)} latest ratings)"
                ),
            )
    # With diversity, re-ranked from as many as a published list holds.
    room = max(asked.k, limits()["top_n"]) if asked.diversity else asked.k
    popular = fill(
        [], versions().get_in_version(version, asked.filters.pools()), asked.excluded, asked.filters, room, mark=False
    )
    if len(popular) < asked.k:
        SHORTENED.labels(endpoint="recommendations").inc()
    return (
        diversify(popular, asked.k, asked.diversity),
        "popular",
        "no recommendations for this user (unknown or new user)",
    )


@api.get("/v1/movies/<movie_id>/similar")
def similar_movies(movie_id: str):
    mid = parse_id(movie_id, "movie_id")
    query = query_args()
    k, uid, asked_out = parse_k(query, limits()["neighbors"]), parse_for_user(query), parse_exclude(query)
    filters = parse_filters(query)
    if uid is None:
        version, (similar,) = versions().lookup(rk.suffix("similar", mid))
        experiment, arm = None, None
    else:  # the person's arm decides the version
        version, (similar,), experiment, arm = versions().lookup_for(uid, rk.suffix("similar", mid))
    fields, exposure = experiment_fields(experiment, arm, version, uid, "similar")
    source = "als"
    if similar is None:  # no ALS neighbours (nobody rated it yet): its neighbours by content, if in the catalog
        movie, similar = versions().get_in_version(version, [rk.suffix("movie", mid), rk.suffix("content", mid)])
        if movie is None:
            raise BadRequest(f"movie {mid} is not in the catalog", 404, "not_found")
        source = "content"
    excluded = (people().excluded(uid) if uid is not None else frozenset()) | asked_out | {mid}
    # Topped up from the popular lists only when genres or years were asked for: "ten westerns like this one";
    # without them a similar list holds only similar movies.
    items = items_to_show(version, similar or [], Asked(k, filters, excluded), "similar", uid, fill_up=filters.active)
    if exposure is not None:
        exposure["items"] = [item["movie_id"] for item in items]
    return answer(
        {
            "movie_id": mid,
            "version": version,
            **fields,
            "source": source,
            **_filter_fields(filters),
            "filled": sum("filled" in i for i in items),
            "items": items,
        }
    )


@api.get("/v1/popular")
def popular_movies():
    query = query_args()
    k, filters, asked_out = parse_k(query, limits()["popular_n"]), parse_filters(query), parse_exclude(query)
    version, _ = versions().lookup(rk.suffix("meta"))  # the meta's presence proves the version is whole
    items = fill([], versions().get_in_version(version, filters.pools()), asked_out, filters, k, mark=False)
    return answer({"version": version, **_filter_fields(filters), "items": items})


@api.get("/v1/new")
def new_movies():
    """Movies nobody had rated when the version was built, nearest by content to the most liked movies of the
    genres asked for (of the whole catalogue without one), best first."""
    query = query_args()
    k, filters, asked_out = parse_k(query, limits()["popular_n"]), parse_filters(query), parse_exclude(query)
    version, _ = versions().lookup(rk.suffix("meta"))
    items = fill([], versions().get_in_version(version, filters.pools("new_movies")), asked_out, filters, k, mark=False)
    return answer({"version": version, **_filter_fields(filters), "items": [{**item, "new": True} for item in items]})


@api.get("/v1/movies/<movie_id>")
def movie_details(movie_id: str):
    mid = parse_id(movie_id, "movie_id")
    version, (movie,) = versions().lookup(rk.suffix("movie", mid))
    if movie is None:
        raise BadRequest(f"movie {mid} is not in the catalog", 404, "not_found")
    return answer({"version": version, **movie})


@api.get("/v1/movies")
def search_movies():
    args = query_args()
    query = args.get("q", "")
    k = parse_k(args, limits()["popular_n"])
    if not 1 <= len(query) <= MAX_QUERY_CHARS:
        raise BadRequest(f"q must have 1 to {MAX_QUERY_CHARS} characters")
    words = list(dict.fromkeys(rk.title_tokens(query)))  # at most 50 in 100 characters
    version, lists = versions().lookup(*[rk.suffix("title", w) for w in words])
    matches: list[int] = []
    if words and all(ids is not None for ids in lists):
        others = [set(ids) for ids in lists[1:]]
        matches = [m for m in lists[0] if all(m in other for other in others)][:k]
    details = versions().get_in_version(version, [rk.suffix("movie", m) for m in matches])
    return answer({"version": version, "q": query, "items": [d for d in details if d]})


@api.get("/v1/version")
def live_version():
    uid = parse_for_user(query_args())
    version, (meta,) = versions().lookup(rk.suffix("meta"))
    experiment = versions().state()[1]
    running = public_view(experiment)
    if running and experiment and uid is not None:
        arm = arm_of(experiment, uid)
        running.update(arm=arm, arm_version=experiment[arm])
    return answer({**(meta or {"version": version}), "experiment": running})


@api.get("/healthz")
def healthz():
    return json_response({"status": "ok"})


@api.get("/readyz")
def readyz():
    version = versions().live_version(refresh=True)  # readiness is about Redis now, not the cached pointer
    return json_response({"status": "ready", "version": version})
