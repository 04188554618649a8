"""The JSON API (blueprint `api`): recommendations, similar and popular movies, movie details and search,
version, health and readiness. A handler is key lookups and a slice, except two bounded merges: a person the
version does not know yet gets at most events.recent_max neighbour lists merged (similar_to_recent), and a genre
filter scans the user's published list. Whatever is answered for a person leaves out the movies they rated or
dismissed through POST /v1/events since the version was built, and a person's recommendations come from their
list folded in by the speed layer (jobs/speed_layer.py) when there is one for the version served (one round
trip reads both)."""
from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, g, request

from schemas import redis_keys as rk
from schemas.experiments import arm_of, public_view
from schemas.movielens import DATASETS, GENRES
from serving.observability import EXPERIMENT_FALLBACKS, FALLBACKS, SHORTENED
from serving.store import Store

api = Blueprint("api", __name__)

MAX_ID = 2**31 - 1
MAX_QUERY_CHARS = 100
# A genre as written ("Sci-Fi") or in lower case ("sci-fi"); the OpenAPI document lists exactly these.
GENRE_NAMES = {**{g: g for g in GENRES}, **{g.lower(): g for g in GENRES}}


class BadRequest(Exception):
    """A request the service refuses: `status`, `{"error", "detail", **extra}` and any `headers`."""

    def __init__(self, detail: str, status: int = 400, error: str = "bad_request", extra: dict | None = None,
                 headers: dict | None = None):
        super().__init__(detail)
        self.detail, self.status, self.error = detail, status, error
        self.extra, self.headers = extra or {}, headers or {}


def json_response(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status=status, mimetype="application/json")


def answer(payload: dict) -> Response:
    """A lookup answer, named by its request_id (a click event sends it back)."""
    return json_response({"request_id": g.request_id, **payload})


def error_response(status: int, error: str, detail: str, **extra) -> Response:
    return json_response({"error": error, "detail": detail, **extra}, status)


# ---------------------------------------------------------------- parameters


def parse_id(raw: str, name: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 1 <= int(raw) <= MAX_ID:
        raise BadRequest(f"{name} must be a whole number from 1 to {MAX_ID}, got {raw[:40]!r}")
    return int(raw)


def parse_k(limit: int, default: int = 10) -> int:
    raw = request.args.get("k")
    if raw is None:
        return min(default, limit)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= limit:
        raise BadRequest(f"k must be a whole number from 1 to {limit}, got {raw[:40]!r}")
    return int(raw)


def parse_genre() -> str | None:
    raw = request.args.get("genre")
    if raw is None:
        return None
    genre = GENRE_NAMES.get(raw)
    if genre is None:
        raise BadRequest(f"unknown genre {raw[:40]!r}; one of: {', '.join(GENRES)} (or in lower case)")
    return genre


MAX_EXCLUDE = 100


def parse_exclude() -> set[int]:
    """`exclude=1,2,3`: at most MAX_EXCLUDE movie ids, each as parse_id takes it."""
    raw = request.args.get("exclude")
    if raw is None:
        return set()
    parts = raw.split(",")
    if len(parts) > MAX_EXCLUDE:
        raise BadRequest(f"exclude takes at most {MAX_EXCLUDE} movie ids, got {len(parts)}")
    # As the OpenAPI pattern says: 1 to 10 digits, no leading zero (an id no movie has simply matches nothing).
    if not all(part.isascii() and part.isdigit() and len(part) <= 10 and part[0] != "0" for part in parts):
        raise BadRequest(f"exclude must be movie ids separated by commas, got {raw[:40]!r}")
    return {int(part) for part in parts}


def parse_for_user() -> int | None:
    raw = request.args.get("user_id")
    return None if raw is None else parse_id(raw, "user_id")


def take_part(experiment: dict | None, arm: str | None, version: str, uid: int,
              endpoint: str) -> tuple[dict, dict | None]:
    """(the answer's experiment fields, the exposure to fill in). During an experiment the exposure is noted for
    the app's after_request, which logs it once the answer is sent; the handler adds what it showed."""
    if not experiment:
        return NO_EXPERIMENT, None
    exposure = {"request_id": g.request_id, "user_id": uid, "experiment": experiment["id"], "arm": arm,
                "version": version, "endpoint": endpoint, "items": [], "fallback": None}
    g.exposure = (exposure, experiment)
    return {"experiment": experiment["id"], "arm": arm}, exposure


NO_EXPERIMENT = {"experiment": None, "arm": None}


def store() -> Store:
    return current_app.extensions["reco_store"]


def limits() -> dict:
    return current_app.config["RECO_LIMITS"]


def _by_genre(items: list[dict], genre: str | None, k: int) -> list[dict]:
    if genre:
        items = [item for item in items if genre in (item.get("genres") or ())]
    return items[:k]


def _shown(items: list[dict], excluded: set[int], genre: str | None, k: int, endpoint: str) -> list[dict]:
    """The first k items of the genre that the person has not rated or dismissed since the version was built;
    counted when those alone made the answer shorter than k."""
    if not excluded:
        return _by_genre(items, genre, k)
    kept = _by_genre([item for item in items if item["movie_id"] not in excluded], genre, k)
    if len(kept) < k and len(_by_genre(items, genre, k)) == k:
        SHORTENED.labels(endpoint=endpoint).inc()
    return kept


# ---------------------------------------------------------------- endpoints


@api.get("/v1/users/<user_id>/recommendations")
def user_recommendations(user_id: str):
    uid = parse_id(user_id, "user_id")
    k, genre, asked_out = parse_k(limits()["top_n"]), parse_genre(), parse_exclude()
    version, (recommended,), experiment, arm = store().lookup_for(uid, rk.suffix("user", uid))
    taking_part, exposure = take_part(experiment, arm, version, uid, "recommendations")
    payload = {"user_id": uid, "version": version, **taking_part}
    fallback = None
    excluded, fresh, latest = store().personal(uid)
    excluded |= asked_out
    if fresh is not None and fresh.get("version") == version:  # folded in against this very version
        items = _shown(fresh["items"], excluded, genre, k, "recommendations")
        payload.update(source="fold_in", fold_in={"events": fresh["events"], "updated_at": fresh["updated_at"]})
    elif recommended is not None:
        items = _shown(recommended, excluded, genre, k, "recommendations")
        payload["source"] = "version"
    else:
        items, fallback, reason = _fallback(version, genre, k, latest, excluded)
        payload["source"] = fallback
        FALLBACKS.labels(reason=fallback).inc()
        if experiment:
            EXPERIMENT_FALLBACKS.labels(experiment["id"], arm, fallback).inc()
        payload.update(fallback=fallback, reason=reason)
    payload.update(genre=genre, items=items)
    if exposure is not None:
        exposure["items"], exposure["fallback"] = [item["movie_id"] for item in items], fallback
    return answer(payload)


def _fallback(version: str, genre: str | None, k: int, latest: list[tuple[int, float]],
              excluded: set[int]) -> tuple[list[dict], str, str]:
    """A user the version does not know. With ratings sent since it was built: the neighbours of the movies
    they rated highest most recently, merged; otherwise the version's popular list (of the genre asked for).
    Neither holds what they rated or dismissed (`excluded`)."""
    if latest:
        seeds = sorted(latest, key=lambda pair: -pair[1])  # highest rated first; stable: newest first among equals
        meta, *lists = store().get_in_version(version, [rk.suffix("meta"), *[rk.suffix("similar", m)
                                                                             for m, _ in seeds]])
        spec = DATASETS.get((meta or {}).get("dataset"))
        middle = sum(spec.rating_scale) / 2 if spec else 3.0
        # A movie like one they loved rises, one like a movie they disliked sinks.
        weights = [rating - middle for _, rating in seeds]
        items = _by_genre(merge_neighbours(lists, weights, excluded | {m for m, _ in seeds}), genre, k)
        if items:
            return items, "similar_to_recent", (f"not in version {version} yet: movies like the ones you "
                                                f"rated since (your {len(seeds)} latest ratings)")
    popular = store().get_in_version(version, [rk.suffix("popular", genre or rk.ALL_GENRES)])[0]
    return (_shown(popular or [], excluded, None, k, "recommendations"), "popular",
            "no recommendations for this user (unknown or new user)")


def merge_neighbours(lists: list[list[dict] | None], weights: list[float], exclude: set[int]) -> list[dict]:
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


@api.get("/v1/movies/<movie_id>/similar")
def similar_movies(movie_id: str):
    mid = parse_id(movie_id, "movie_id")
    k, uid, asked_out = parse_k(limits()["neighbors"]), parse_for_user(), parse_exclude()
    if uid is None:
        version, (similar,) = store().lookup(rk.suffix("similar", mid))
        experiment, arm = None, None
    else:  # the user's arm decides the version
        version, (similar,), experiment, arm = store().lookup_for(uid, rk.suffix("similar", mid))
    taking_part, exposure = take_part(experiment, arm, version, uid, "similar")
    if similar is None and store().get_in_version(version, [rk.suffix("movie", mid)])[0] is None:
        raise BadRequest(f"movie {mid} is not in the catalog", 404, "not_found")
    excluded = (store().excluded(uid) if uid is not None else set()) | asked_out
    items = _shown(similar or [], excluded, None, k, "similar")
    if exposure is not None:
        exposure["items"] = [item["movie_id"] for item in items]
    return answer({"movie_id": mid, "version": version, **taking_part, "items": items})


@api.get("/v1/popular")
def popular_movies():
    k, genre = parse_k(limits()["popular_n"]), parse_genre()
    version, (popular,) = store().lookup(rk.suffix("popular", genre or rk.ALL_GENRES))
    return answer({"version": version, "genre": genre, "items": (popular or [])[:k]})


@api.get("/v1/movies/<movie_id>")
def movie_details(movie_id: str):
    mid = parse_id(movie_id, "movie_id")
    version, (movie,) = store().lookup(rk.suffix("movie", mid))
    if movie is None:
        raise BadRequest(f"movie {mid} is not in the catalog", 404, "not_found")
    return answer({"version": version, **movie})


@api.get("/v1/movies")
def search_movies():
    query = request.args.get("q", "")
    k = parse_k(limits()["popular_n"])
    if not 1 <= len(query) <= MAX_QUERY_CHARS:
        raise BadRequest(f"q must have 1 to {MAX_QUERY_CHARS} characters")
    words = list(dict.fromkeys(rk.title_tokens(query)))  # at most 50 in 100 characters
    version, lists = store().lookup(*[rk.suffix("title", w) for w in words])
    matches: list[int] = []
    if words and all(ids is not None for ids in lists):
        others = [set(ids) for ids in lists[1:]]
        matches = [m for m in lists[0] if all(m in other for other in others)][:k]
    details = store().get_in_version(version, [rk.suffix("movie", m) for m in matches])
    return answer({"version": version, "q": query, "items": [d for d in details if d]})


@api.get("/v1/version")
def live_version():
    uid = parse_for_user()
    version, (meta,) = store().lookup(rk.suffix("meta"))
    experiment = store().state()[1]
    running = public_view(experiment)
    if running and uid is not None:
        arm = arm_of(experiment, uid)
        running.update(arm=arm, arm_version=experiment[arm])
    return answer({**(meta or {"version": version}), "experiment": running})


@api.get("/healthz")
def healthz():
    return json_response({"status": "ok"})


@api.get("/readyz")
def readyz():
    version = store().live_version(refresh=True)  # readiness is about Redis now, not the cached pointer
    return json_response({"status": "ready", "version": version})
