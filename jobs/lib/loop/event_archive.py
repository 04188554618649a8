"""The stream archives: what people sent (the `reco:{events}` stream) copied into append-only Parquet under
`<data root>/events/archive/`, and what experiments showed them (`reco:{exposures}`) under
`<data root>/events/exposures/`, one batch per run each, trimmed from the stream only once safe on disk.

A batch is `<run id>.parquet` (absent when the run found nothing new) and `<run id>.json`, the commit record:
the stream id range (first_id, last_id] it holds, its row count and the fencing token of the lease it was
written under. The steps, and why a crash anywhere loses and duplicates nothing:
1. the archiver takes the stream's lease (`archive:<folder>`, jobs/lib/runtime/leases.py): a second archiver
   waits, then stops naming the holder; a stalled one whose lease was taken over is refused before it commits;
2. the high-water mark is the largest last_id of the committed batches (the archive is the truth, not Redis);
   entries still in the stream at or below it must all be in the archive (a crash between a commit and its
   trim leaves such entries); any that are not (a Redis restored from an older copy, a replica behind its
   master) stop the run with their range named instead of being trimmed unread;
3. the stream's last id is taken first, then (high-water, last id] is read page by page into a `.partial` file,
   fsynced, moved into place and its rows read back from the footer; a crash here leaves no commit record, so
   the next run reads the same entries again (they are still in the stream) and overwrites the orphan;
4. the commit record is written whole (temporary file, fsync, rename, fsync of the folder); from now on no run
   reads this range again. A torn record (left by a crash of an older version that wrote in place) is moved
   aside with a warning and its range read again from the stream;
5. the stream is trimmed below last_id (XTRIM MINID); a crash before it just leaves entries that every later
   run checks against the archive, trims and never re-reads.
A rerun of a run id finds its commit record and archives nothing new.

Entries deleted before they were archived are counted, and stop the run. Redis cannot stop a client that may
XADD from trimming with it (XADD's own MAXLEN and MINID: the lookup service's user may append), but a stream
counts every entry ever added (`entries-added`, Redis 7), deletions and trims included. Each commit record keeps
that count as of its read; the entries a run finds are exactly those added since the previous record unless some
were deleted unread: the difference is the loss. A count that went down means the stream itself was deleted or
replaced (FLUSHALL, a restart without persistence): what it held since the last archive is lost, how much is
unknown. Either way the surviving entries are committed and trimmed as usual, the loss is recorded in the commit
record, and `EventsLost` stops the run before anything learns from the data; a rerun of that run id goes on
(someone has looked), the loss staying in its record and in the run's manifest.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis

from conf import redis_client
from conf.settings import RedisSettings
from jobs.lib.runtime.errors import JobError, TransientJobError
from jobs.lib.runtime.leases import Lease, default_holder
from schemas import archive, events, experiments
from schemas import redis_keys as rk
from schemas.archive import START, TornRecord, committed_batches
from schemas.events import next_stream_id, stream_id_key
from schemas.storage import (
    delete_file,
    exists,
    join,
    list_files,
    move_file,
    read_json,
    read_table,
    write_json,
    write_parquet_batches,
)

log = logging.getLogger("reco.events")


@dataclass(frozen=True)
class Stream:
    """A Redis stream and its archive: where the batches go and how an entry becomes rows."""
    key: str
    folder: str
    arrow_schema: Callable
    to_rows: Callable  # (entry id, fields) -> [row, ...]


EVENTS = Stream(rk.EVENTS, archive.EVENTS, events.arrow_schema,
                lambda entry_id, fields: [events.from_stream_entry(entry_id, fields)])
EXPOSURES = Stream(rk.EXPOSURES, archive.EXPOSURES, experiments.arrow_schema, experiments.from_stream_entry)


def archive_folder(data_root: str, stream: Stream = EVENTS) -> str:
    return archive.folder(data_root, stream.folder)


class EventsLost(JobError):
    """Entries of a stream were deleted before they were archived (or the stream was replaced): the run stops."""

    def __init__(self, stream: str, summary: dict, record: str):
        batch, lost = summary["batch"], summary["batch"].get("lost")
        what = f"{lost} entries of {stream} were deleted before they were archived (XADD with MAXLEN or MINID, " \
               "XTRIM or XDEL by a client that may write it)" if lost else \
               f"{stream} was deleted or replaced since the last archive (its entries-added count fell: FLUSHALL, " \
               "a restart without persistence, a restore?); what it held since then is lost, how much is unknown"
        super().__init__(f"{what}. The entries that survived are archived ({batch['rows']} rows). Nothing learns "
                         f"from this run's data until someone looks: rerun this run id to go on; the loss stays "
                         f"counted in {record}")
        self.summary = summary


def archive_events(settings: RedisSettings, data_root: str, run_id: str, page: int = 10_000,
                   stream: Stream = EVENTS, lease_ttl_s: float = 30.0, lease_wait_s: float = 60.0) -> dict:
    """Archive the stream's new entries for `run_id` (idempotent per run id), trim what is archived, and say
    which archive files the run uses: every batch up to and including its own."""
    folder = archive_folder(data_root, stream)
    record = join(folder, f"{run_id}.json")
    client = redis_client.writer(settings)
    try:
        with Lease(client, f"archive:{stream.folder}", default_holder(run_id), lease_ttl_s, lease_wait_s) as lease:
            _set_torn_records_aside(folder)
            if exists(record):
                batch, rerun = read_json(record), True
                log.info("run %s archived %s events before; nothing new is archived", run_id, batch["rows"])
            else:
                batch, rerun = _archive_new(client, stream, folder, run_id, page, lease), False
            lease.check()
            _trim_through(client, stream, batch["last_id"])
    except redis.RedisError as exc:
        raise TransientJobError(f"cannot read the event stream at {redis_client.safe_url(settings.url)}: {exc} "
                                "(events.archive: false trains on MovieLens alone)") from None
    finally:
        client.close()
    upto = stream_id_key(batch["last_id"])
    used = [b for b in committed_batches(folder) if stream_id_key(b["last_id"]) <= upto and b["rows"]]
    summary = {"batch": {k: v for k, v in batch.items() if k != "record"}, "rerun": rerun,
               "files": [b["file"] for b in used], "rows": sum(b["rows"] for b in used), "folder": folder}
    if not rerun and (batch.get("lost") or batch.get("stream_replaced")):
        raise EventsLost(stream.key, summary, record)
    return summary


def _set_torn_records_aside(folder: str) -> None:
    """Move torn commit records aside (their ranges are read again) and remove orphans of interrupted writes."""
    while True:
        try:
            committed_batches(folder)
            break
        except TornRecord as torn:
            move_file(torn.path, f"{torn.path}.torn")
            log.warning("%s; moved aside to %s.torn: its range is read again from the stream", torn, torn.path)
    for suffix in (".partial", ".tmp"):
        for orphan in list_files(folder, suffix, contains=True):
            delete_file(orphan)
            log.info("removed %s, left by an interrupted write", orphan)


def _check_below_high_water(client: redis.Redis, stream: Stream, previous: list[dict], high_water: str) -> None:
    """Entries at or below the high-water mark still in the stream must be in the archive already."""
    below, start = [], "-"
    while entries := client.xrange(stream.key, min=start, max=high_water, count=10_000):
        below += [entry_id.decode() for entry_id, _ in entries]
        start = f"({below[-1]}"
    if not below:
        return
    lowest = stream_id_key(below[0])
    archived = set()
    for batch in previous:
        if batch["rows"] and stream_id_key(batch["last_id"]) >= lowest:
            archived |= set(read_table(batch["file"], ["stream_id"]).column("stream_id").to_pylist())
    missing = [entry_id for entry_id in below if entry_id not in archived]
    if missing:
        raise JobError(f"{len(missing)} entries of {stream.key} from {missing[0]} to {missing[-1]} are at or below "
                       f"the archive's high-water mark {high_water} but not in the archive (Redis restored from an "
                       "older copy, or failed over to a replica behind its master?): nothing is trimmed. Copy them "
                       f"out (XRANGE {stream.key} {missing[0]} {missing[-1]}) before trimming by hand")


def _archive_new(client: redis.Redis, stream: Stream, folder: str, run_id: str, page: int, lease: Lease) -> dict:
    previous = committed_batches(folder)
    high_water = previous[-1]["last_id"] if previous else START
    if high_water != START:
        _check_below_high_water(client, stream, previous, high_water)
    _trim_through(client, stream, high_water)  # a crash after an earlier commit and before its trim
    added, last_id = _stream_counts(client, stream.key)
    batch = {"run_id": run_id, "first_id": None, "last_id": high_water, "rows": 0, "file": None,
             "token": lease.token, "entries_added": added}
    read = {"rows": 0, "entries": 0, "first_id": None}
    if stream_id_key(last_id) <= stream_id_key(high_water):
        _count_losses(batch, previous, read["entries"], stream.key)
        lease.check()
        write_json(join(folder, f"{run_id}.json"), batch)
        log.info("no new events since %s", high_water)
        return batch


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
            read["entries"] += len(entries)
            yield pa.RecordBatch.from_pylist(rows, schema=schema)
            start = f"({last}"

    path = join(folder, f"{run_id}.parquet")
    written = write_parquet_batches(path, stream.arrow_schema(), pages())
    if written != read["rows"]:
        raise JobError(f"event archive {path} holds {written} rows, {read['rows']} were read: not committed")
    batch.update(first_id=read["first_id"], last_id=last_id, rows=written, file=path)
    _count_losses(batch, previous, read["entries"], stream.key)
    lease.check()  # a stalled archiver whose lease was taken over commits nothing
    write_json(join(folder, f"{run_id}.json"), batch)  # the commit
    log.info("archived %d entries of %s (%s, %s] into %s", written, stream.key, high_water, last_id, path)
    return batch


def _stream_counts(client: redis.Redis, key: str) -> tuple[int, str]:
    """(entries ever added to the stream, its last entry's id) in one read; (0, START) when there is no stream."""
    try:
        info = client.xinfo_stream(key)
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return 0, START
        raise
    last = info.get("last-entry")
    return int(info["entries-added"]), last[0].decode() if last else START


def _count_losses(batch: dict, previous: list[dict], entries_read: int, key: str) -> None:
    """Sets `lost` (entries added since the previous record and gone unread) or `stream_replaced` on the batch.
    A previous record written before the count was kept gives nothing to compare with: nothing is claimed."""
    counted = [b["entries_added"] for b in previous if b.get("entries_added") is not None]
    if previous and not counted:
        return
    before = max(counted, default=0)  # the count only grows: the largest is the latest
    lost = batch["entries_added"] - before - entries_read
    if batch["entries_added"] < before or lost < 0:
        batch["stream_replaced"] = True
        log.error("%s was deleted or replaced since the last archive (entries-added %d, was %d)", key,
                  batch["entries_added"], before)
    elif lost:
        batch["lost"] = lost
        log.error("%d entries of %s were deleted before they were archived", lost, key)


def _trim_through(client: redis.Redis, stream: Stream, last_id: str) -> None:
    """Drop stream entries up to and including `last_id` (all archived)."""
    if last_id != START:
        client.xtrim(stream.key, minid=next_stream_id(last_id), approximate=False)


def archived_files(data_root: str, stream: Stream) -> list[str]:
    """The committed, non-empty archive files of a stream, oldest first."""
    return archive.files(data_root, stream.folder)
