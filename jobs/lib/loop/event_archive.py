"""The stream archives: what people sent (the `reco:{events}` stream) copied into append-only Parquet under
`<data root>/events/archive/`, and what experiments showed them (`reco:{exposures}`) under
`<data root>/events/exposures/`, one batch per run each, trimmed from the stream only once safe on disk.

A batch is `<run id>.parquet` (absent when the run found nothing new) and `<run id>.json`, the commit record:
the stream id range (first_id, last_id] it holds and its row count. The steps, and why a crash anywhere loses
and duplicates nothing:
1. the high-water mark is the largest last_id of the committed batches (the archive is the truth, not Redis);
2. the stream's last id is taken first, then (high-water, last id] is read page by page into a `.partial` file,
   moved into place and its rows read back from the footer; a crash here leaves no commit record, so the next
   run reads the same entries again (they are still in the stream) and overwrites the orphan;
3. the commit record is written; from now on no run reads this range again;
4. the stream is trimmed below last_id (XTRIM MINID); a crash before it just leaves entries that every later
   run trims first and never re-reads.
A rerun of a run id finds its commit record and archives nothing new. Runs must not archive concurrently (the
DAG has max_active_runs=1).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import redis

from conf import redis_client
from conf.settings import RedisSettings
from jobs.lib.runtime.errors import JobError, TransientJobError
from jobs.lib.runtime.storage import exists, join, list_files, read_json, write_json, write_parquet_batches
from schemas import events, experiments
from schemas import redis_keys as rk
from schemas.events import next_stream_id, stream_id_key

log = logging.getLogger("reco.events")

START = "0-0"  # before any stream id


@dataclass(frozen=True)
class Stream:
    """A Redis stream and its archive: where the batches go and how an entry becomes rows."""
    key: str
    folder: str
    arrow_schema: Callable
    to_rows: Callable  # (entry id, fields) -> [row, ...]


EVENTS = Stream(rk.EVENTS, "archive", events.arrow_schema,
                lambda entry_id, fields: [events.from_stream_entry(entry_id, fields)])
EXPOSURES = Stream(rk.EXPOSURES, "exposures", experiments.arrow_schema, experiments.from_stream_entry)


def archive_folder(data_root: str, stream: Stream = EVENTS) -> str:
    return join(data_root, "events", stream.folder)


def committed_batches(folder: str) -> list[dict]:
    """Every committed batch (its commit record plus `record` = the record's path), oldest range first."""
    batches = [{**read_json(path), "record": path} for path in list_files(folder, ".json")]
    return sorted(batches, key=lambda b: (stream_id_key(b["last_id"]), b["run_id"]))


def archive_events(settings: RedisSettings, data_root: str, run_id: str, page: int = 10_000,
                   stream: Stream = EVENTS) -> dict:
    """Archive the stream's new entries for `run_id` (idempotent per run id), trim what is archived, and say
    which archive files the run uses: every batch up to and including its own."""
    folder = archive_folder(data_root, stream)
    record = join(folder, f"{run_id}.json")
    client = redis_client.writer(settings)
    try:
        if exists(record):
            batch, rerun = read_json(record), True
            log.info("run %s archived %s events before; nothing new is archived", run_id, batch["rows"])
        else:
            batch, rerun = _archive_new(client, stream, folder, run_id, page), False
        _trim_through(client, stream, batch["last_id"])
    except redis.RedisError as exc:
        raise TransientJobError(f"cannot read the event stream at {redis_client.safe_url(settings.url)}: {exc} "
                                "(events.archive: false trains on MovieLens alone)") from None
    finally:
        client.close()
    upto = stream_id_key(batch["last_id"])
    used = [b for b in committed_batches(folder) if stream_id_key(b["last_id"]) <= upto and b["rows"]]
    return {"batch": {k: v for k, v in batch.items() if k != "record"}, "rerun": rerun,
            "files": [b["file"] for b in used], "rows": sum(b["rows"] for b in used), "folder": folder}


def _archive_new(client: redis.Redis, stream: Stream, folder: str, run_id: str, page: int) -> dict:
    previous = committed_batches(folder)
    high_water = previous[-1]["last_id"] if previous else START
    _trim_through(client, stream, high_water)  # a crash after an earlier commit and before its trim
    newest = client.xrevrange(stream.key, count=1)
    last_id = newest[0][0].decode() if newest else START
    batch = {"run_id": run_id, "first_id": None, "last_id": high_water, "rows": 0, "file": None}
    if stream_id_key(last_id) <= stream_id_key(high_water):
        write_json(join(folder, f"{run_id}.json"), batch)
        log.info("no new events since %s", high_water)
        return batch

    read = {"rows": 0, "first_id": None}

    def pages():
        import pyarrow as pa
        schema = stream.arrow_schema()
        start = "-" if high_water == START else f"({high_water}"
        while True:
            entries = client.xrange(stream.key, min=start, max=last_id, count=page)
            if not entries:
                return
            rows = [row for entry_id, fields in entries for row in stream.to_rows(entry_id, fields)]
            first, last = (entry_id.decode() for entry_id in (entries[0][0], entries[-1][0]))
            read["first_id"] = read["first_id"] or first
            read["rows"] += len(rows)
            yield pa.RecordBatch.from_pylist(rows, schema=schema)
            start = f"({last}"

    path = join(folder, f"{run_id}.parquet")
    written = write_parquet_batches(path, stream.arrow_schema(), pages())
    if written != read["rows"]:
        raise JobError(f"event archive {path} holds {written} rows, {read['rows']} were read: not committed")
    batch.update(first_id=read["first_id"], last_id=last_id, rows=written, file=path)
    write_json(join(folder, f"{run_id}.json"), batch)  # the commit
    log.info("archived %d entries of %s (%s, %s] into %s", written, stream.key, high_water, last_id, path)
    return batch


def _trim_through(client: redis.Redis, stream: Stream, last_id: str) -> None:
    """Drop stream entries up to and including `last_id` (all archived)."""
    if last_id != START:
        client.xtrim(stream.key, minid=next_stream_id(last_id), approximate=False)


def archived_files(data_root: str, stream) -> list[str]:
    """The committed, non-empty archive files of a stream, oldest first."""
    return [b["file"] for b in committed_batches(archive_folder(data_root, stream)) if b["rows"]]
