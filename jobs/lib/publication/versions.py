"""Versions in Redis: writing one from its Parquet files, verifying it, flipping the live pointer, retention,
rollback, and the smoke check (what it reads, read as the service reads it).

Readers never see half a version: every key of a version, its metadata last, is written and counted before
one atomic step registers it and moves the live pointer. Publication runs under the `publish` lease
(jobs/lib/runtime/leases.py) and the flip checks its fencing token in the same Lua script, so a stalled publisher
whose lease was taken over cannot flip. A version is registered as pending before its first key is written, so
a publisher killed mid-write leaves nothing the next one cannot find and remove. No path deletes the version the
pointer names or one an experiment serves. Layout (and placement on a Redis Cluster): schemas/redis_keys.py.
"""
from __future__ import annotations

import logging
import random
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from conf import redis_client
from conf.settings import RedisSettings
from jobs.lib.loop.experiment_control import current, end, versions_in_use
from jobs.lib.runtime.errors import JobError, TransientJobError
from jobs.lib.runtime.leases import FENCE, Lease, default_holder
from schemas import items
from schemas import redis_keys as rk
from schemas.storage import list_files, read_parquet_batches
from schemas.versions import VersionMeta

log = logging.getLogger("reco.publication")

FILE_KEYS = 10_000     # keys per Parquet file of a version's values: many files share evenly between the WRITERS
FILE_OPTIONS = {"maxRecordsPerFile": FILE_KEYS,
                # LZ4 reads back faster than Snappy (bench-scale's publication column: benchmarks/results/scale.md)
                "compression": "lz4_raw"}
WRITERS = 2            # threads, one connection each: one reads and packs while Redis parses the other's MSETs
BATCH_KEYS = 500       # keys per MSET (single Redis)
PIPELINE_KEYS = 5000   # keys in flight before reading the replies
DELETE_BATCH = 1000    # keys per UNLINK when pruning
# RESP's separators as Arrow scalars, made once: pyarrow imports pandas (slow) at its first conversion of a
# Python value, a cost of starting the job rather than of writing keys.
DOLLAR, CRLF, CRLF_DOLLAR, EMPTY = (pa.scalar(text.encode(), pa.binary()) for text in ("$", "\r\n", "\r\n$", ""))

_FENCED = """
if not ours then
  return redis.error_reply('FENCED the publish lease is no longer held by token ' .. ARGV[1] ..
                           ' (held now: ' .. tostring(held) .. ')')
end
"""
# The flip, fenced. KEYS: the publish lease, pending, versions, live, pending owners; ARGV: token, version, time,
# make_live (1/0).
_FLIP = FENCE + _FENCED + """
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
if ARGV[4] == '1' then redis.call('SET', KEYS[4], ARGV[2]) end
return 1
"""
# Moving live back, fenced. KEYS: the publish lease, live; ARGV: token, version, the live version it may replace
# ('' for any). 1 when moved, 0 when live is no longer the one to replace.
_ROLLBACK = FENCE + _FENCED + """
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


def write_files(folder: str, settings: RedisSettings, prefix: str) -> int:
    """Write the (suffix, value) rows of the Parquet files in `folder` (written with FILE_OPTIONS) into Redis
    from this process, each under `prefix` + suffix; returns the number of keys Redis accepted.

    WRITERS threads share the files; each reads its files with pyarrow and sends the rows as they are: the values
    never pass through the JVM or become Python objects. On a single Redis each batch is one MSET whose framing
    Arrow's string kernels add in one copy, pipelined; on a cluster, redis-py's cluster pipeline sends each node
    its keys. The writes run in the job's driver, not in Spark tasks: one Redis takes no more than about one
    writer core, and a job's first Python tasks take seconds to start (bench-scale measures the writer against
    redis-benchmark: benchmarks/results/scale.md)."""
    paths = list_files(folder, ".parquet")
    if not paths:
        raise JobError(f"no values to publish in {folder}")
    shares = [paths[i::WRITERS] for i in range(min(WRITERS, len(paths)))]
    with ThreadPoolExecutor(len(shares), thread_name_prefix="publish") as pool:
        return sum(pool.map(lambda share: _write_share(share, settings, prefix), shares))


def _write_share(paths: list[str], settings: RedisSettings, prefix: str) -> int:
    client = redis_client.writer(settings)
    try:
        batches = (batch for path in paths for batch in read_parquet_batches(path, ["suffix", "value"], BATCH_KEYS))
        return _write_cluster(client, batches, prefix) if settings.cluster else _write_packed(client, batches, prefix)
    finally:
        client.close()


def _write_packed(client: redis.Redis, batches, prefix: str) -> int:
    """One MSET per batch on one connection, PIPELINE_KEYS keys in flight before reading the replies."""
    connection = client.connection_pool.get_connection()
    lead = pa.scalar(prefix.encode(), pa.binary())
    written, in_flight = 0, []
    try:
        for batch in (batch for batch in batches if batch.num_rows):  # MSET needs at least one pair
            keys = pc.binary_join_element_wise(lead, batch.column("suffix").cast(pa.binary()), EMPTY)
            connection.send_packed_command(_packed_mset(keys, batch.column("value")), check_health=False)
            in_flight.append(batch.num_rows)
            if sum(in_flight) >= PIPELINE_KEYS:
                written += _replies(connection, in_flight)
        written += _replies(connection, in_flight)
    finally:
        connection.disconnect()  # never hand a connection with unread replies back to the pool
    return written


def _packed_mset(keys, values) -> list:
    """The RESP encoding of `MSET key value ...` as [header, body]. Each element of one Arrow string array is
    framed as "$<len>\\r\\n<key>\\r\\n$<len>\\r\\n<value>\\r\\n", so the body is that array's data
    buffer as it stands: the value bytes are copied once."""
    keys, values = keys.cast(pa.binary()), values.cast(pa.binary())  # 32-bit offsets (a batch is far below 2 GB)

    def length(strings, lead):  # lead + byte length + CRLF
        return pc.binary_join_element_wise(lead, pc.binary_length(strings).cast(pa.string()).cast(pa.binary()),
                                           CRLF, EMPTY)
    framed = pc.binary_join_element_wise(length(keys, DOLLAR), keys, length(values, CRLF_DOLLAR), values, CRLF,
                                         EMPTY)
    if framed.null_count:
        raise JobError("a key or value to publish is null")
    offsets = np.frombuffer(framed.buffers()[1], np.int32, len(framed) + 1, framed.offset * 4)
    body = framed.buffers()[2][offsets[0]:offsets[-1]]
    return [f"*{2 * len(framed) + 1}\r\n$4\r\nMSET\r\n".encode(), body]


def _replies(connection, in_flight: list[int]) -> int:
    """Read one reply per MSET sent; raise unless every one is OK. Empties `in_flight`."""
    for _ in in_flight:
        if connection.read_response() != b"OK":
            raise JobError("Redis refused a write")
    written = sum(in_flight)
    in_flight.clear()
    return written


def _write_cluster(client, batches, prefix: str) -> int:
    pipe, written, pending = client.pipeline(transaction=False), 0, 0
    for batch in batches:
        for suffix, value in zip(batch.column("suffix").to_pylist(), batch.column("value").to_pylist()):
            pipe.set(prefix + suffix, value)
            pending += 1
            if pending >= PIPELINE_KEYS:
                written += _flush(pipe, pending)
                pending = 0
    return written + _flush(pipe, pending)


def _flush(pipe, pending: int) -> int:
    if not pending:
        return 0
    if not all(pipe.execute()):
        raise JobError("Redis refused a write")
    return pending


def publish_version(client: redis.Redis, settings: RedisSettings, version: str, values_folder: str, expected: int,
                    meta: bytes, lease: Lease, make_live: bool = True) -> float:
    """Write the (suffix, value) Parquet files in `values_folder` and then `meta` as `version`, check that Redis
    acknowledged and holds exactly `expected` keys and the meta, then in one fenced step register the version and
    make it live (a candidate, `make_live=False`, is only registered: an experiment serves it). Returns the write
    seconds. On a failure the partial version is deleted and the live pointer has not moved, except where the
    flip was applied and only its reply was lost: then the version is live, and this says so and succeeds."""
    with client.pipeline(transaction=True) as pipe:  # discoverable before its first key is written, and whose
        pipe.zadd(rk.PENDING, {version: time.time()})
        pipe.hset(rk.PENDING_OWNERS, version, lease.token)
        pipe.execute()
    try:
        started = time.perf_counter()
        written = write_files(values_folder, settings, rk.version_prefix(version))
        seconds = time.perf_counter() - started
        client.set(rk.key(version, "meta"), meta)  # last: a version with meta has all its keys
        in_redis = count_version_keys(client, version)
        if written != expected or in_redis != expected + 1:
            raise JobError(f"version {version} incomplete: {expected} keys and the meta built, {written} "
                           f"acknowledged, {in_redis} found in Redis; live version unchanged")
        lease.check()
        client.register_script(_FLIP)(keys=[lease.key, rk.PENDING, rk.VERSIONS, rk.LIVE, rk.PENDING_OWNERS],
                                      args=[lease.token, version, time.time(), int(make_live)])
    except BaseException as failure:
        if _flip_applied(client, version, make_live, failure):
            return seconds
        raise
    return seconds


def _flip_applied(client: redis.Redis, version: str, make_live: bool, failure: BaseException) -> bool:
    """After a failed publication, read the registry back to tell which case happened. The flip applied (its
    reply lost): True, the version stays. Not applied: the partial version is deleted, False. Unknown (Redis
    unreachable): the version stays pending for the next publication or prune to remove, and this raises."""
    try:
        registered = client.zscore(rk.VERSIONS, version) is not None
        live = live_version(client)
    except redis.RedisError as exc:
        raise TransientJobError(f"publication of {version} failed ({failure}) and Redis cannot say whether its "
                                f"flip was applied ({exc}); it stays pending: the next publish or prune removes it "
                                "unless it is live") from failure
    if registered and (live == version or not make_live):
        log.warning("the flip's reply was lost (%s), but Redis applied it: version %s is %s", failure, version,
                    "live" if make_live else "registered")
        return True
    delete_version(client, version)  # leave no half version behind; the live pointer never moved
    return False


def live_version(client: redis.Redis) -> str | None:
    value = client.get(rk.LIVE)
    return value.decode() if value else None


def count_version_keys(client: redis.Redis, version: str) -> int:
    return sum(1 for _ in client.scan_iter(match=rk.version_pattern(version), count=10_000))


def delete_version(client: redis.Redis, version: str) -> int:
    """UNLINK a version's keys in batches (frees memory in the background, never blocks Redis for long).
    Refuses the version the pointer names and those a running experiment serves."""
    if version in {live_version(client), *versions_in_use(client)}:
        raise JobError(f"version {version} is live or serves an experiment: not deleted")
    deleted, batch = 0, []
    for key in client.scan_iter(match=rk.version_pattern(version), count=10_000):
        batch.append(key)
        if len(batch) >= DELETE_BATCH:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    with client.pipeline(transaction=True) as pipe:
        pipe.zrem(rk.VERSIONS, version)
        pipe.zrem(rk.PENDING, version)
        pipe.hdel(rk.PENDING_OWNERS, version)
        pipe.execute()
    return deleted


def prune(client: redis.Redis, retention: int, lease: Lease, keep: tuple[str, ...] = ()) -> list[str]:
    """Keep the `retention` newest versions, the live one, those a running experiment serves and `keep`; delete
    the rest, and the pending versions that older holders of the publish lease abandoned (a publisher that
    died mid-write). Only while `lease` is still held: a publisher that stalled past its lease deletes nothing
    (LeaseLost), and a pending version whose owner holds a newer token than `lease` is a write in progress."""
    lease.check()
    keep = {live_version(client), *versions_in_use(client), *keep}
    newest_first = [v.decode() for v in client.zrevrange(rk.VERSIONS, 0, -1)]
    doomed = [v for v in newest_first[retention:] if v not in keep]
    owners = {v.decode(): int(token) for v, token in client.hgetall(rk.PENDING_OWNERS).items()}
    abandoned = []
    for version in (v.decode() for v in client.zrange(rk.PENDING, 0, -1)):
        if version in keep:  # a flip applied whose reply was lost and whose publisher died before reading back
            client.zrem(rk.PENDING, version)
            client.hdel(rk.PENDING_OWNERS, version)
            continue
        if owners.get(version, 0) > lease.token:
            log.info("leaving version %s: a newer publisher (token %d) is writing it", version, owners[version])
            continue
        lease.check()
        log.warning("removing version %s, abandoned mid-write (%d keys)", version, delete_version(client, version))
        abandoned.append(version)
    for version in doomed:
        lease.check()
        log.info("pruning version %s (%d keys)", version, delete_version(client, version))
    return doomed + abandoned


def rollback(client: redis.Redis, lease: Lease, version: str | None = None, replacing: str | None = None) -> dict:
    """Point live at `version`, or at the newest kept version older than the live one, in one step fenced by
    the publish lease. With `replacing`, only while live is still that version (a smoke check rolls back what
    it checked, never a newer publication): otherwise nothing moves and "moved" is False."""
    live = live_version(client)
    kept = [v.decode() for v in client.zrevrange(rk.VERSIONS, 0, -1)]
    if version is None:
        older = kept[kept.index(live) + 1:] if live in kept else kept
        if not older:
            raise JobError(f"nothing to roll back to: kept versions are {kept}")
        version = older[0]
    if version not in kept or not client.exists(rk.key(version, "meta")):
        raise JobError(f"version {version!r} is not kept; kept versions: {kept}")
    moved = bool(client.register_script(_ROLLBACK)(keys=[lease.key, rk.LIVE],
                                                   args=[lease.token, version, replacing or ""]))
    if moved:
        log.info("live version: %s -> %s", live, version)
    else:
        log.warning("live is no longer %s: not rolled back to %s", replacing, version)
    return {"previous": live, "live": version if moved else live_version(client), "moved": moved}


def smoke_check(client: redis.Redis, publish_report: dict, sample: int = 25, seed: int = 0,
                lease_ttl_s: float = 30.0, lease_wait_s: float = 60.0) -> dict:
    """After publication: the live version is the one just published (or, for a candidate, the running
    experiment's treatment), and a sample of its users' and movies' keys, the popular list and the meta are there
    and read as the service reads them (schemas/items.py, schemas/versions.py). On any gap, point live back to
    the previous version under the publish lease, and only if live is still the version checked (abort the
    candidate's experiment), and raise JobError. A run whose publication was held has nothing to check."""
    if publish_report.get("held"):
        return {"held": publish_report["held"]}
    version, counts, candidate = publish_report["version"], publish_report["counts"], publish_report.get("candidate")
    problems = []
    live = live_version(client)
    experiment = current(client)
    if candidate and (experiment or {}).get("treatment") != version:
        problems.append(f"version {version} is not the running experiment's treatment")
    elif not candidate and live != version:
        problems.append(f"live version is {live}, this run published {version}")

    def ids(kind: str) -> list[int]:
        return [int(k.decode().rsplit(":", 1)[1])
                for k in client.scan_iter(match=rk.kind_prefix(version, kind) + "*", count=1000)]
    users, movies = ids("user"), ids("similar")
    if len(users) != counts["user"] or len(movies) != counts["similar"]:
        problems.append(f"{len(users)} users and {len(movies)} movies found, publication counted "
                        f"{counts['user']} and {counts['similar']}")
    rng = random.Random(seed)
    picked = [("user", u) for u in rng.sample(users, min(sample, len(users)))] + \
             [("movie", m) for m in rng.sample(movies, min(sample, len(movies)))] + \
             [("popular", rk.ALL_GENRES), ("meta", None)]
    values = redis_client.mget(client, [rk.key(version, kind, ident) for kind, ident in picked])
    problems += [f"{kind} {ident if ident is not None else ''}".strip() + ": missing or empty"
                 for (kind, ident), value in zip(picked, values) if not _readable(kind, value)]
    if problems:
        with Lease(client, "publish", default_holder("smoke-check"), lease_ttl_s, lease_wait_s) as lease:
            if candidate and experiment and experiment.get("treatment") == version:
                end(client, "aborted", experiment["id"], reason="the candidate failed its smoke check")
            elif not candidate and publish_report.get("previous"):
                rollback(client, lease, publish_report["previous"], replacing=version)
        raise JobError(f"smoke check failed ({'; '.join(problems[:5])}); live version: {live_version(client)}")
    return {"version": version, "candidate": bool(candidate), "users_checked": sum(k == "user" for k, _ in picked),
            "movies_checked": sum(k == "movie" for k, _ in picked)}


def _readable(kind: str, value: bytes | None) -> bool:
    """A value the service can answer from: a list with at least one movie, a movie's details, the meta."""
    if not value:
        return False
    try:
        if kind == "meta":
            return VersionMeta.from_json(value) is not None
        if kind == "movie":
            return bool(rk.decode(value).get("title"))
        return bool(items.unpack(value).movie_ids)
    except (ValueError, TypeError, struct.error):
        return False


def check_published_run(config, run_id: str) -> dict:
    """The smoke check of a run's publication (the DAG's smoke_check task)."""
    from jobs.lib.runtime.run_layout import run_paths
    from schemas.storage import read_json

    report = read_json(run_paths(config, run_id).publish_report)
    return smoke_check(redis_client.writer(config.redis), report, lease_ttl_s=config.redis.lease_ttl_s,
                       lease_wait_s=config.redis.lease_wait_s)
