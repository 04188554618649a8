"""The Redis layout, shared by the publisher (jobs/publish.py) and the lookup service (serving/).

    reco:{ctl}:live                    string   the live version id
    reco:{ctl}:versions                zset     version id -> publication time (epoch seconds)
    reco:{ctl}:pending                 zset     version id -> start of its write: registered before its first key,
                                                so a publisher killed mid-write leaves a version the next one finds
    reco:{ctl}:pending_owners          hash     version id -> fencing token of the publisher writing it: a prune
                                                removes only what an older holder abandoned
    reco:{ctl}:lease:<name>            string   "<token> <holder>" of a lease (publish, archive:<stream>), expiring
    reco:{ctl}:fence:<name>            int      the lease's last fencing token (jobs/lib/runtime/leases.py)
    reco:{ctl}:last_run                json     the last DAG run: result, task seconds, row counts (for /metrics)
    reco:{ctl}:experiment              json     the running experiment, if any (schemas/experiments.py)
    reco:{ctl}:experiments             list     ended experiments (JSON, with outcome and ended_at), newest first
    reco:v:<version>:meta              json     run id, dataset, published/trained at, headline metrics, counts
    reco:v:<version>:user:<user_id>    json     [item, ...] top-N for the user, best first, each with `because`
    reco:v:<version>:seen:<user_id>    json     [movie_id, ...] what the user rated or dismissed (a filtered
                                                answer fills up from the popular lists without these)
    reco:v:<version>:similar:<movie>   json     [item, ...] nearest movies by cosine of ALS item factors
    reco:v:<version>:content:<movie>   json     [item, ...] nearest movies by content (genres, decade, title words),
                                                for the movies without a `similar` list (no ratings yet)
    reco:v:<version>:new:<user_id>     json     [item, ...] new movies (no ALS factors) nearest the user's content
                                                profile, for serving.new_slots
    reco:v:<version>:new_movies:<genre> json    [item, ...] new movies of the genre ("_all": all) nearest the content
                                                of the genre's most liked movies (GET /v1/new)
    reco:v:<version>:popular:<genre>   json     [item, ...] most rated movies; genre "_all" for the whole catalog
                                                (recommend.filter_pool long: filters fill answers from them)
    reco:v:<version>:movie:<movie_id>  json     {movie_id, title, year, genres, n_ratings, mean_rating}
    reco:v:<version>:title:<token>     json     [movie_id, ...] movies whose title has the token, most rated first

The loop (POST /v1/events, archived by ingest; these keys are mutable and outside every version):

    reco:{events}                      stream   one entry per accepted event (field `event`: JSON, schemas/events.py);
                                                trimmed only after it is archived
    reco:{events}:recent:<user_id>     list     "<movie_id>:<rating>" of the user's latest ratings, newest first
                                                (for "similar_to_recent" until the next version has the user)
    reco:{events}:excluded:<user_id>   set      movie ids the user rated or dismissed through events: no answer
                                                for them shows these
    reco:{events}:fresh:<user_id>      json     {version, events, updated_at, items}: the user's list folded in
                                                by the speed layer (serving/speed/) against `version`
    reco:{events}:rate:<minute>[:<user>] int    events the intake took in a minute, and one user got
    reco:{events}:once:<key>           string   "<fingerprint> <stream id> ...": an Idempotency-Key's request and
                                                the ids it got, for events.idempotency_ttl_s (a retry appends nothing)
    reco:{exposures}                   stream   one entry per answer shown in an experiment (field `exposure`);
                                                archived by ingest like the events, trimmed only after that

Placement for Redis Cluster (redis.cluster: true): a `{...}` hash tag puts keys in one slot. The pointer and
the registry (and the experiment) share `{ctl}`, so a flip or a promotion is one MULTI/EXEC and the service
reads pointer and experiment with one MGET; the loop's keys share `{events}`, so an intake
request is one MULTI/EXEC; a version's keys have no tag and spread over every master by their own hash (the
bulk of the memory), written by per-node pipelines and read with per-slot MGETs. The same names serve a
single Redis.

An item is {"movie_id", "title", "year", "genres", "score"} (a user's also `because`: {"movie_id", "title"} of
the rated movie that contributed most, jobs/lib/model/explain.py): values are serialised once, at publication, in
exactly the shape the API returns, so a request does a lookup, a slice and no joins. A version's keys never
change once the pointer names it, which is what lets the service cache them (serving/versions.py).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import orjson

PREFIX = "reco"
LIVE = f"{PREFIX}:{{ctl}}:live"
VERSIONS = f"{PREFIX}:{{ctl}}:versions"
PENDING = f"{PREFIX}:{{ctl}}:pending"
PENDING_OWNERS = f"{PREFIX}:{{ctl}}:pending_owners"
LAST_RUN = f"{PREFIX}:{{ctl}}:last_run"
ALL_GENRES = "_all"
EVENTS = f"{PREFIX}:{{events}}"
EXPERIMENT = f"{PREFIX}:{{ctl}}:experiment"
EXPERIMENT_LOG = f"{PREFIX}:{{ctl}}:experiments"
EXPOSURES = f"{PREFIX}:{{exposures}}"
SPEED_GROUP = "speed"  # the speed layer's consumer group on the events stream (serving/speed/)


def speed_group(shard: int, shards: int) -> str:
    """The consumer group of one of `shards` speed layers (1-based `shard`): each reads the whole stream and folds
    in its own share of the people; one speed layer alone keeps the plain name."""
    return SPEED_GROUP if shards == 1 else f"{SPEED_GROUP}-{shard}-of-{shards}"


KINDS = ("meta", "user", "similar", "popular", "movie", "title", "seen", "content", "new", "new_movies")


def lease(name: str) -> str:
    return f"{PREFIX}:{{ctl}}:lease:{name}"


def fence(name: str) -> str:
    return f"{PREFIX}:{{ctl}}:fence:{name}"


def version_prefix(version: str) -> str:
    """Everything of one version starts with this."""
    return f"{PREFIX}:v:{version}:"


def key(version: str, kind: str, ident: object = None) -> str:
    assert kind in KINDS, kind
    return version_prefix(version) + (kind if ident is None else f"{kind}:{ident}")


def kind_prefix(version: str, kind: str) -> str:
    """Keys of one kind in one version are this plus the id (the publisher builds keys in Spark from it)."""
    assert kind in KINDS, kind
    return f"{version_prefix(version)}{kind}:"


def suffix(kind: str, ident: object = None) -> str:
    """The part of a key after the version prefix."""
    return kind if ident is None else f"{kind}:{ident}"


def recent(user_id: int | str) -> str:
    return f"{EVENTS}:recent:{user_id}"


def excluded(user_id: int | str) -> str:
    """The movies a person rated or dismissed since the version was built: no answer for them shows these."""
    return f"{EVENTS}:excluded:{user_id}"


def idempotency(key: str) -> str:
    return f"{EVENTS}:once:{key}"


def fresh(user_id: int | str) -> str:
    """The person's list as the speed layer last folded it in (served only with the version it names)."""
    return f"{EVENTS}:fresh:{user_id}"


# What serving/people.py watches: every key that holds something of one person, ending in their id.
PERSON_PREFIXES = (recent(""), excluded(""), fresh(""))


def person_of(key: bytes) -> int:
    """The user id a key under PERSON_PREFIXES belongs to."""
    return int(key.rpartition(b":")[2])


def intake_rate(minute: int) -> str:
    """Events the intake took in one minute (since the epoch): what its token's senders may add."""
    return f"{EVENTS}:rate:{minute}"


def user_rate(user_id: int, minute: int) -> str:
    """Events one user id got in one minute."""
    return f"{EVENTS}:rate:{minute}:{user_id}"


def version_pattern(version: str) -> str:
    return version_prefix(version) + "*"


def encode(value: object) -> bytes:
    return orjson.dumps(value)


def decode(raw: bytes | str | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def title_tokens(text: str) -> list[str]:
    """Lower-case, accent-free alphanumeric words: 'Misérables, Les' -> ['miserables', 'les']."""
    folded = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()
    return re.findall(r"[a-z0-9]+", folded)
