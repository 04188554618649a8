"""The event archive as it lies under the data root: what ingest writes (jobs/lib/loop/event_archive.py, which
also says how it stays whole through crashes) and what the batch and the speed layer read.

    <data root>/events/archive/     the events people sent (the `reco:{events}` stream)
    <data root>/events/exposures/   what experiments showed them (`reco:{exposures}`)
Each holds, per run that found something new, `<run id>.parquet` (one row per event: schemas/events.py
arrow_schema) and `<run id>.json`, its commit record: the stream id range (first_id, last_id] it holds, its row
count, the fencing token of the lease it was written under and the stream's entries-added count as of its read.
A batch without its record is not committed and is never read.
"""

from __future__ import annotations

import logging

from schemas.events import stream_id_key
from schemas.storage import join, list_files, read_json, read_table

log = logging.getLogger("reco.archive")

START = "0-0"  # before any stream id
EVENTS, EXPOSURES = "archive", "exposures"  # the folders under <data root>/events/


class TornRecord(ValueError):
    def __init__(self, path: str):
        super().__init__(f"commit record {path} is torn (not valid JSON: a crash while it was written)")
        self.path = path


def folder(data_root: str, name: str = EVENTS) -> str:
    return join(data_root, "events", name)


def committed_batches(archive: str) -> list[dict]:
    """Every committed batch of the archive folder (its commit record plus `record` = the record's path), oldest
    range first. Where two records overlap (a stale archiver's commit raced a newer one), the newer lease's token
    wins."""
    batches = []
    for path in list_files(archive, ".json"):
        try:
            batch = read_json(path)
            batch["last_id"], batch["rows"]  # noqa: B018 - a record without them is torn too
        except (ValueError, KeyError, TypeError):
            raise TornRecord(path) from None
        batches.append({**batch, "record": path})
    kept: list[dict] = []
    taken: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for batch in sorted(batches, key=lambda b: -(b.get("token") or 0)):
        span = (stream_id_key(batch["first_id"]), stream_id_key(batch["last_id"])) if batch["rows"] else None
        if span and any(lo <= span[1] and span[0] <= hi for lo, hi in taken):
            log.warning("ignoring batch %s: its range overlaps a batch of a newer archiver", batch["record"])
            continue
        if span:
            taken.append(span)
        kept.append(batch)
    return sorted(kept, key=lambda b: (stream_id_key(b["last_id"]), b["run_id"]))


def files(data_root: str, name: str = EVENTS) -> list[str]:
    """The committed, non-empty archive files, oldest first."""
    return [b["file"] for b in committed_batches(folder(data_root, name)) if b["rows"]]


def rows_after(data_root: str, after: tuple[int, int], columns: list[str]):
    """The archived rows (dicts of `columns`, stream_id among them) with a stream id after `after`, in stream
    order: what a reader that has everything up to `after` has not seen of what ingest already trimmed."""
    for batch in committed_batches(folder(data_root)):
        if batch["rows"] and stream_id_key(batch["last_id"]) > after:
            for row in read_table(batch["file"], ["stream_id", *columns]).to_pylist():
                if stream_id_key(row["stream_id"]) > after:
                    yield row
