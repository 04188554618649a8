"""Experiments between published versions: the record in Redis, who sees which arm, and the exposure log.

An experiment (`reco:{ctl}:experiment`, JSON; at most one runs at a time):

    id            "exp-<treatment version>"
    kind          "ab" (started by hand) | "canary" (started by the nightly DAG in canary release mode)
    control       the version everyone else sees: the live one when the experiment started
    treatment     the candidate version (published with `publish --candidate`, registered but not live)
    share         fraction of users in the treatment arm, 0 < share < 1
    salt          mixed into the assignment hash, so each experiment splits users afresh
    sample_rate   fraction of users whose exposures are logged (chosen by hash too: all of a user's or none)
    started_at    ISO time

Assignment is a pure function of (salt, user id): the same user always sees the same arm for the life of the
experiment, whether or not a version knows them; the service, the judging job and the simulator share it.

An exposure (one lookup answer shown to a user in an experiment) travels like an event, except that the
service writes them in batches: one entry of the `reco:{exposures}` stream holds a worker's buffered exposures
(field `exposures`, a JSON array; one command per batch keeps the log off the lookups' latency) -> one row per
exposure in the Parquet exposure archive:

    stream_id   the id of the entry that carried it (shared by a batch)
    request_id  the answer's request_id (a click names it)
    ts          seconds since the epoch, the answer's time
    user_id     int
    experiment  the experiment id
    arm         "control" | "treatment"
    version     the version that answered
    endpoint    "recommendations" | "similar"
    items       the movie ids shown, in order
    status      the HTTP status of the answer (errors are logged too: the error-rate guardrail)
    latency_ms  the service's time for the answer (the latency guardrail)
    fallback    the fallback used, or null
"""

from __future__ import annotations

import hashlib

import orjson

CONTROL, TREATMENT = "control", "treatment"
ARMS = (CONTROL, TREATMENT)
KINDS = ("ab", "canary")
EXPOSURE_COLUMNS = (
    "stream_id",
    "request_id",
    "ts",
    "user_id",
    "experiment",
    "arm",
    "version",
    "endpoint",
    "items",
    "status",
    "latency_ms",
    "fallback",
)


def unit_hash(salt: str, user_id: int) -> float:
    """A uniform number in [0, 1) fixed by (salt, user id)."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def arm_of(experiment: dict, user_id: int) -> str:
    return TREATMENT if unit_hash(experiment["salt"], user_id) < experiment["share"] else CONTROL


def is_sampled(experiment: dict, user_id: int) -> bool:
    """Whether this user's exposures are logged (an independent hash: sampling must not follow the arm)."""
    rate = experiment.get("sample_rate", 1.0)
    return rate >= 1.0 or unit_hash(experiment["salt"] + ":sample", user_id) < rate


def public_view(experiment: dict | None) -> dict | None:
    """What the API shows of the running experiment (the salt stays private: it would let anyone pick an arm)."""
    if not experiment:
        return None
    return {k: experiment[k] for k in ("id", "kind", "control", "treatment", "share", "started_at")}


def to_stream_value(exposure: dict) -> bytes:
    """One exposure as the JSON object a stream entry's array holds."""
    return orjson.dumps({k: exposure.get(k) for k in EXPOSURE_COLUMNS[1:]})


def to_stream_fields(encoded: list[bytes]) -> dict[str, bytes]:
    """A batch of exposures, each from to_stream_value, as one stream entry's fields (a JSON array)."""
    return {"exposures": b"[" + b",".join(encoded) + b"]"}


def from_stream_entry(stream_id: bytes | str, fields: dict) -> list[dict]:
    """One stream entry as archive rows, one per exposure; what cannot be read becomes null (judging skips such
    rows), an unreadable entry one row of nulls (so the archive still accounts for it)."""
    raw = fields.get(b"exposures", fields.get("exposures"))
    try:
        batch = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        batch = None
    entry_id = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    if not isinstance(batch, list) or not batch:
        batch = [{}]
    return [_row(entry_id, entry) for entry in batch]


def logged(entries: list) -> int:
    """How many exposures stream entries (as XRANGE returns them) hold."""
    return sum(len(from_stream_entry(entry_id, fields)) for entry_id, fields in entries)


def _row(stream_id: str, entry) -> dict:
    if not isinstance(entry, dict):
        entry = {}
    items = entry.get("items")
    row: dict[str, object] = {"stream_id": stream_id}
    for column in ("request_id", "experiment", "arm", "version", "endpoint", "fallback"):
        row[column] = entry.get(column) if isinstance(entry.get(column), str) else None
    for column in ("ts", "user_id", "status"):
        value = entry.get(column)
        row[column] = value if isinstance(value, int) and not isinstance(value, bool) else None
    latency = entry.get("latency_ms")
    row["latency_ms"] = float(latency) if isinstance(latency, (int, float)) and not isinstance(latency, bool) else None
    row["items"] = [m for m in items if isinstance(m, int)] if isinstance(items, list) else None
    return row


def arrow_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("stream_id", pa.string()),
            ("request_id", pa.string()),
            ("ts", pa.int64()),
            ("user_id", pa.int64()),
            ("experiment", pa.string()),
            ("arm", pa.string()),
            ("version", pa.string()),
            ("endpoint", pa.string()),
            ("items", pa.list_(pa.int64())),
            ("status", pa.int64()),
            ("latency_ms", pa.float64()),
            ("fallback", pa.string()),
        ]
    )
