"""A list as Redis holds it, and the item the API shows of it: one definition for the batch that writes lists,
the speed layer that writes a person's fresh list, and the service that reads them.

Lists are stored compact (`FORMAT`, recorded in each version's meta): the movie ids in order, their scores as
float32 and, where a list has them, the `because` movie ids; a header of JSON fields where a list carries some
(a fresh list: its version, events and time). What the API shows of a movie (title, year, genres) is per
movie and per version: the service joins it from the version's movie keys, which never change, once per worker
and version. A version published before this format (no `format` in its meta) holds JSON items as the API
returns them: `decode_json_list` reads it, so a rollback to one still answers.

    magic 0x02 | flags (1: scores, 2: because) | count uint32 | header length uint16 | header JSON
    | movie ids uint32 x count | scores float32 x count | because ids uint32 x count (0: none)
All little-endian: 12 bytes per item with `because`, 8 without, 4 for a list of ids (what a person has seen,
a title word's movies).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import NamedTuple

import orjson

FORMAT = 2
MAGIC = 0x02
_HEAD = struct.Struct("<BBIH")
_SCORES, _BECAUSE = 1, 2
SCORE_DECIMALS = 5  # what the API shows of a score


class Packed(NamedTuple):
    """A list as stored: movie ids in order, their scores (None for a list of ids), the movie each is `because`
    of (None: no reasons in this list; 0 in it: none for that movie), and the list's header fields."""

    movie_ids: tuple[int, ...]
    scores: tuple[float, ...] | None
    because: tuple[int, ...] | None
    header: dict | None


def pack(movie_ids, scores=None, because=None, header: dict | None = None) -> bytes:
    """The stored form of a list (`because`: a movie id, or None/0 for none, per item)."""
    ids = [int(m) for m in movie_ids]
    n = len(ids)
    head = orjson.dumps(header) if header else b""
    flags = (_SCORES if scores is not None else 0) | (_BECAUSE if because is not None else 0)
    parts = [_HEAD.pack(MAGIC, flags, n, len(head)), head, struct.pack(f"<{n}I", *ids)]
    if scores is not None:
        parts.append(struct.pack(f"<{n}f", *(float(s) for s in scores)))
    if because is not None:
        parts.append(struct.pack(f"<{n}I", *(int(b or 0) for b in because)))
    return b"".join(parts)


def unpack(raw: bytes) -> Packed:
    magic, flags, n, head_length = _HEAD.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError(f"not a packed list (first byte {magic:#x})")
    at = _HEAD.size
    header = orjson.loads(raw[at : at + head_length]) if head_length else None
    at += head_length
    ids = struct.unpack_from(f"<{n}I", raw, at)
    at += 4 * n
    scores = because = None
    if flags & _SCORES:
        scores = struct.unpack_from(f"<{n}f", raw, at)
        at += 4 * n
    if flags & _BECAUSE:
        because = struct.unpack_from(f"<{n}I", raw, at)
    return Packed(ids, scores, because, header)


def because_field(details: dict) -> orjson.Fragment:
    """The `because` of an item, naming this movie ({movie_id, title}), serialized once per movie and version as
    an orjson Fragment. A Fragment is no container to the cyclic garbage collector, so an item holding one (and
    only numbers, strings and tuples of strings besides) leaves the collector's sight after a full pass; a nested
    dict kept every item a worker caches in every full collection's walk, whose pause grew with the cache."""
    return orjson.Fragment(orjson.dumps({"movie_id": details["movie_id"], "title": details["title"]}))


def item(details: dict, score: float, because: orjson.Fragment | None = None) -> dict:
    """The API's item of a movie: its details as the version holds them (movie_id, title, year, genres), its
    score, and the movie it is `because` of (`because_field`), when there is one."""
    shown = {
        "movie_id": details["movie_id"],
        "title": details["title"],
        "year": details.get("year"),
        "genres": details.get("genres") or (),
        "score": round(score, SCORE_DECIMALS),
    }
    if because is not None:
        shown["because"] = because
    return shown


def items_of(packed: Packed, details: Mapping[int, dict], because: Mapping[int, orjson.Fragment]) -> tuple[dict, ...]:
    """A packed list's items, `details` mapping each movie id to its details and `because` to its
    `because_field` (a movie without details, e.g. gone from the catalogue, is left out, and so is a `because`
    without)."""
    shown = []
    for at, movie in enumerate(packed.movie_ids):
        movie_details = details.get(movie)
        if movie_details is None:
            continue
        reason = packed.because[at] if packed.because else 0
        shown.append(
            item(movie_details, packed.scores[at] if packed.scores else 0.0, because.get(reason) if reason else None)
        )
    return tuple(shown)


def movies_named(packed: Packed) -> set[int]:
    """Every movie whose details showing the list needs: its movies and their `because` movies."""
    return set(packed.movie_ids) | ({b for b in packed.because if b} if packed.because else set())


def decode_json_list(raw: bytes):
    """A value of a version published as JSON (no `format` in its meta): as it was stored."""
    return orjson.loads(raw)
