"""The JSON API (blueprint `api`): recommendations, similar and popular movies, movie details and search,
version, health and readiness. A handler is key lookups and a pass over at most a few published lists
(serving/lists.py): filters (genres, years) and exclusions over the person's published list, topped up to k
from the version's popular lists of those genres (recommend.filter_pool long) without what the person rated;
a diversity re-ranking of at most the published list; and, for a person the version does not know yet, at most
events.recent_max neighbour lists merged (similar_to_recent). Whatever is answered for a person leaves out the
movies they rated or dismissed through POST /v1/events since the version was built, and a person's
recommendations come from their list folded in by the speed layer (jobs/speed_layer.py) when there is one for
the version served (one round trip reads both)."""
from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, g, request

from schemas import redis_keys as rk
from schemas.events import MAX_ID
from schemas.experiments import arm_of, public_view
from schemas.movielens import DATASETS, GENRES
from serving.lists import Filters, candidates, diversify, fill, with_new
from serving.observability import EXPERIMENT_FALLBACKS, FALLBACKS, SHORTENED
from serving.store import Store

api = Blueprint("api", __name__)

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


YEARS = (1800, 2100)
DIVERSITY_DECIMALS = 3


def parse_filters() -> Filters:
    """`genre=Western,Comedy` (any of them; as written or in lower case), `year_min`, `year_max` (inclusive)."""
    genres: tuple[str, ...] = ()
    raw = request.args.get("genre")
    if raw is not None:
        names = raw.split(",")
        unknown = [name for name in names if name not in GENRE_NAMES]
        if unknown or len(names) > len(GENRES):
            raise BadRequest(f"unknown genre {(unknown or [raw])[0][:40]!r}; up to {len(GENRES)} of: "
                             f"{', '.join(GENRES)} (or in lower case), comma-separated")
        genres = tuple(dict.fromkeys(GENRE_NAMES[name] for name in names))
    # A year_min after year_max is an empty range, answered with no movies (the OpenAPI document cannot state
    # a bound between two parameters, so a 400 would refuse a request the document allows).
    return Filters(genres, parse_year("year_min"), parse_year("year_max"))


def parse_year(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) != 4 or not YEARS[0] <= int(raw) <= YEARS[1]:
        raise BadRequest(f"{name} must be a year from {YEARS[0]} to {YEARS[1]}, got {raw[:40]!r}")
    return int(raw)


def parse_diversity() -> float:
    """`diversity`: 0 (the published order) to 1, at most DIVERSITY_DECIMALS decimals."""
    raw = request.args.get("diversity")
    if raw is None:
        return 0.0
    whole, dot, decimals = raw.partition(".")
    if not (raw.isascii() and whole in ("0", "1") and (not dot or (decimals.isdigit()
            and len(decimals) <= DIVERSITY_DECIMALS)) and float(raw) <= 1):
        raise BadRequest(f"diversity must be a number from 0 to 1 (e.g. 0.3), got {raw[:40]!r}")
    return float(raw)


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


def _shown(version: str, items, excluded: set[int], filters: Filters, k: int, endpoint: str,
           seen_of: int | None = None, diversity: float = 0.0, fill_up: bool = True) -> list[dict]:
    """The first k items of a list that pass the filters and are not excluded (re-ranked for diversity), topped
    up to k from the popular lists of the genres asked for when fewer are left (`fill_up`), without what
    `seen_of`, a user the version knows, rated or dismissed. Counted when the answer still falls short of k."""
    shown = diversify(candidates(items, excluded, filters), k, diversity)
    if len(shown) < k and fill_up:
        suffixes = filters.pools() + ([rk.suffix("seen", seen_of)] if seen_of is not None else [])
        values = store().get_in_version(version, suffixes)
        seen = set(values.pop() or ()) if seen_of is not None else set()
        shown = fill(shown, values, excluded | seen, filters, k)
    if len(shown) < k:
        SHORTENED.labels(endpoint=endpoint).inc()
    return shown


def _filter_fields(filters: Filters) -> dict:
    return {"genre": ",".join(filters.genres) or None, "year_min": filters.year_min, "year_max": filters.year_max}


# ---------------------------------------------------------------- endpoints


@api.get("/v1/users/<user_id>/recommendations")
def user_recommendations(user_id: str):
    uid = parse_id(user_id, "user_id")
    k, filters, asked_out = parse_k(limits()["top_n"]), parse_filters(), parse_exclude()
    diversity = parse_diversity()
    version, (recommended,), experiment, arm = store().lookup_for(uid, rk.suffix("user", uid))
    taking_part, exposure = take_part(experiment, arm, version, uid, "recommendations")
    payload = {"user_id": uid, "version": version, **taking_part}
    fallback = None
    excluded, fresh, latest = store().personal(uid)
    excluded |= asked_out
    known = uid if recommended is not None else None  # a user the version has a `seen` list for
    if fresh is not None and fresh.get("version") == version:  # folded in against this very version
        items = _shown(version, fresh["items"], excluded, filters, k, "recommendations", known, diversity)
        payload.update(source="fold_in", fold_in={"events": fresh["events"], "updated_at": fresh["updated_at"]})
    elif recommended is not None:
        items = _shown(version, recommended, excluded, filters, k, "recommendations", known, diversity)
        payload["source"] = "version"
    else:
        items, fallback, reason = _fallback(version, filters, k, latest, excluded, diversity)
        payload["source"] = fallback
        FALLBACKS.labels(reason=fallback).inc()
        if experiment:
            EXPERIMENT_FALLBACKS.labels(experiment["id"], arm, fallback).inc()
        payload.update(fallback=fallback, reason=reason)
    slots = current_app.config["RECO_NEW_SLOTS"]
    if known is not None and k > 1 and slots:  # a person the version knows: new movies near their taste
        picks = store().get_in_version(version, [rk.suffix("new", uid)])[0]
        items = with_new(items, picks, excluded, filters, k, min(slots, k - 1))
    payload.update(**_filter_fields(filters), diversity=diversity, filled=sum("filled" in i for i in items),
                   items=items)
    if exposure is not None:
        exposure["items"], exposure["fallback"] = [item["movie_id"] for item in items], fallback
    return answer(payload)


def _fallback(version: str, filters: Filters, k: int, latest: list[tuple[int, float]], excluded: set[int],
              diversity: float) -> tuple[list[dict], str, str]:
    """A user the version does not know. With ratings sent since it was built: the neighbours of the movies
    they rated highest most recently, merged (topped up from the popular lists); otherwise the version's popular
    lists. Neither holds what they rated or dismissed (`excluded`)."""
    if latest:
        seeds = sorted(latest, key=lambda pair: -pair[1])  # highest rated first; stable: newest first among equals
        meta, *lists = store().get_in_version(version, [rk.suffix("meta"), *[rk.suffix("similar", m)
                                                                             for m, _ in seeds]])
        spec = DATASETS.get((meta or {}).get("dataset"))
        middle = sum(spec.rating_scale) / 2 if spec else 3.0
        # A movie like one they loved rises, one like a movie they disliked sinks.
        weights = [rating - middle for _, rating in seeds]
        left_out = excluded | {m for m, _ in seeds}
        merged = merge_neighbours(lists, weights, left_out)
        if candidates(merged, set(), filters):
            items = _shown(version, merged, left_out, filters, k, "recommendations", None, diversity)
            return items, "similar_to_recent", (f"not in version {version} yet: movies like the ones you "
                                                f"rated since (your {len(seeds)} latest ratings)")
    # With diversity, re-ranked from as many as a published list holds.
    room = max(k, limits()["top_n"]) if diversity else k
    popular = fill([], store().get_in_version(version, filters.pools()), excluded, filters, room, mark=False)
    if len(popular) < k:
        SHORTENED.labels(endpoint="recommendations").inc()
    return (diversify(popular, k, diversity), "popular",
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
    filters = parse_filters()
    if uid is None:
        version, (similar,) = store().lookup(rk.suffix("similar", mid))
        experiment, arm = None, None
    else:  # the user's arm decides the version
        version, (similar,), experiment, arm = store().lookup_for(uid, rk.suffix("similar", mid))
    taking_part, exposure = take_part(experiment, arm, version, uid, "similar")
    source = "als"
    if similar is None:  # no ALS neighbours (nobody rated it yet): its neighbours by content, if in the catalog
        movie, similar = store().get_in_version(version, [rk.suffix("movie", mid), rk.suffix("content", mid)])
        if movie is None:
            raise BadRequest(f"movie {mid} is not in the catalog", 404, "not_found")
        source = "content"
    excluded = (store().excluded(uid) if uid is not None else set()) | asked_out | {mid}
    # Topped up from the popular lists only when genres or years were asked for: "ten westerns like this one";
    # without them a similar list holds only similar movies.
    items = _shown(version, similar or [], excluded, filters, k, "similar", uid, fill_up=filters.active)
    if exposure is not None:
        exposure["items"] = [item["movie_id"] for item in items]
    return answer({"movie_id": mid, "version": version, **taking_part, "source": source, **_filter_fields(filters),
                   "filled": sum("filled" in i for i in items), "items": items})


@api.get("/v1/popular")
def popular_movies():
    k, filters, asked_out = parse_k(limits()["popular_n"]), parse_filters(), parse_exclude()
    version, _ = store().lookup(rk.suffix("meta"))
    items = fill([], store().get_in_version(version, filters.pools()), asked_out, filters, k, mark=False)
    return answer({"version": version, **_filter_fields(filters), "items": items})


@api.get("/v1/new")
def new_movies():
    """Movies nobody had rated when the version was built, nearest by content to the most liked movies of the
    genres asked for (of the whole catalogue without one), best first."""
    k, filters, asked_out = parse_k(limits()["popular_n"]), parse_filters(), parse_exclude()
    version, _ = store().lookup(rk.suffix("meta"))
    items = fill([], store().get_in_version(version, filters.pools("new_movies")), asked_out, filters, k, mark=False)
    return answer({"version": version, **_filter_fields(filters), "items": [{**item, "new": True} for item in items]})


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
