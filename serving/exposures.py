"""The exposure log: every answer shown to a user in an experiment, appended to the `reco:{exposures}` stream
(schemas/experiments.py) for the judging job.

A lookup must stay as fast with an experiment running as without one, so a request only appends its exposure
to this worker's buffer, once its answer has been sent (serving/__init__.py), already encoded as JSON (about
1 us); a background thread writes the buffer every `experiments.exposure_flush_s` seconds as one stream entry
(one XADD of the joined JSON array). An XADD per exposure showed in the lookups' p99. Encoding in the thread
held the interpreter about 0.4 ms per 300 exposures while requests waited for it; joining encoded ones takes
under 0.05 ms. What that costs, and what was chosen:
- a worker killed outright loses at most its last `exposure_flush_s` of exposures (at a normal exit the buffer
  is written); losses fall on both arms alike, so the comparison stays fair;
- with Redis down the buffer is kept (up to MAX_BUFFER_BYTES of encoded exposures) and written when Redis is
  back; lookups never fail because of the log;
- a write whose answer is lost (a timeout after Redis took it) is written again, so an exposure may be stored
  twice: judging counts each request_id once;
- when the stream already holds `experiments.exposure_backlog_mb` of exposures (no run has archived it for
  days), exposures are not logged rather than filling Redis's memory: an entry holds at most BATCH_BYTES, so
  the stream's length bounds its bytes whoever sends the requests (tests/serving/test_flood.py floods it).
Both bounds are in bytes, not exposures: an answer's exposure grows with k.
Every exposure is counted in `reco_exposures_total{experiment, arm, outcome}`: logged, sampled_out (the
user is outside `sample_rate`) or dropped.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time

import redis

from schemas import redis_keys as rk
from schemas.experiments import is_sampled, to_stream_fields, to_stream_value
from serving.observability import EXPOSURES

log = logging.getLogger("reco.exposures")

MAX_BUFFER_BYTES = 16 * 2**20  # encoded exposures a worker holds while Redis is unreachable
BATCH_BYTES = 256 * 2**10  # the most one stream entry holds (one XADD)


class ExposureLog:
    def __init__(self, client: redis.Redis, backlog_mb: int, flush_s: float):
        self.client, self.flush_s = client, flush_s
        self.backlog = max(1, backlog_mb * 2**20 // BATCH_BYTES)  # stream entries
        self._buffer: collections.deque = collections.deque()  # ((experiment, arm), exposure's JSON)
        self._buffered_bytes = 0
        # The buffer and its byte count change together, from the requests and from the writer thread; a lock of
        # their own, so that a request never waits for a write to Redis (which holds _write_lock).
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._owner: int | None = None  # the process whose thread writes (gunicorn forks after create_app)
        self._length = 0  # the stream's length after this worker's last write

    def add(self, exposure: dict, experiment: dict) -> None:
        if not is_sampled(experiment, exposure["user_id"]):
            EXPOSURES.labels(exposure["experiment"], exposure["arm"], "sampled_out").inc()
            return
        encoded = to_stream_value(exposure)
        with self._buffer_lock:
            kept = self._buffered_bytes + len(encoded) <= MAX_BUFFER_BYTES
            if kept:
                self._buffer.append(((exposure["experiment"], exposure["arm"]), encoded))
                self._buffered_bytes += len(encoded)
        if not kept:
            EXPOSURES.labels(exposure["experiment"], exposure["arm"], "dropped").inc()
            return
        if self._owner != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._write_lock:
            if self._owner == os.getpid():
                return
            self._owner = os.getpid()
            threading.Thread(target=self._run, name="exposure-log", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.flush_s)
            try:
                self.flush()
            except Exception:  # the thread must outlive anything one write does
                log.exception("writing exposures failed; they are kept and retried")

    def flush(self) -> int:
        """Write what is buffered; returns how many were written."""
        written = 0
        with self._write_lock:
            while self._buffer:
                batch = self._next_batch()
                if self._length >= self.backlog:
                    self._count(batch, "dropped")
                    self._length = self._stream_length()
                    continue
                try:
                    with self.client.pipeline(transaction=False) as pipe:
                        pipe.xadd(rk.EXPOSURES, to_stream_fields([encoded for _, encoded in batch]))  # type: ignore[arg-type]
                        pipe.xlen(rk.EXPOSURES)
                        self._length = pipe.execute()[-1]
                except redis.RedisError as exc:
                    with self._buffer_lock:
                        self._buffer.extendleft(reversed(batch))  # kept in order for the next attempt
                        self._buffered_bytes += sum(len(encoded) for _, encoded in batch)
                    log.warning("exposures not written (%s); %d buffered", exc, len(self._buffer))
                    break
                self._count(batch, "logged")
                written += len(batch)
        return written

    def _next_batch(self) -> list[tuple]:
        """The oldest exposures whose JSON array fits in BATCH_BYTES (at least one)."""
        with self._buffer_lock:
            batch = [self._buffer.popleft()]
            size = len(batch[0][1]) + 2  # the brackets of the array
            while self._buffer and size + len(self._buffer[0][1]) + 1 <= BATCH_BYTES:
                batch.append(self._buffer.popleft())
                size += len(batch[-1][1]) + 1
            self._buffered_bytes -= sum(len(encoded) for _, encoded in batch)
        return batch

    def _stream_length(self) -> int:
        try:
            return self.client.xlen(rk.EXPOSURES)
        except redis.RedisError:
            return self._length

    @staticmethod
    def _count(batch: list[tuple], outcome: str) -> None:
        for (experiment, arm), n in collections.Counter(arm for arm, _ in batch).items():
            EXPOSURES.labels(experiment, arm, outcome).inc(n)
