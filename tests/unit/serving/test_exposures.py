"""The exposure log's buffer (serving/exposures.py) under requests and its writer thread at once: its byte count
stays the bytes it holds, so its bound holds."""
import sys
import threading

import redis

from serving.exposures import ExposureLog

EXPERIMENT = {"id": "exp-1", "sample_rate": 1.0, "salt": "s"}


class FlakyRedis:
    """Takes every other write, refuses the rest (the writer puts a refused batch back)."""

    def __init__(self):
        self.calls = 0

    def pipeline(self, transaction=False):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def xadd(self, *args):
        pass

    def xlen(self, *args):
        pass

    def execute(self):
        self.calls += 1
        if self.calls % 2:
            raise redis.ConnectionError("refused")
        return [b"1-0", 0]


def test_the_byte_count_is_what_the_buffer_holds_whoever_changes_it(monkeypatch):
    monkeypatch.setattr(ExposureLog, "_start", lambda self: None)  # the writer below stands in for the thread
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    log = ExposureLog(FlakyRedis(), backlog_mb=1024, flush_s=1)
    stop = threading.Event()

    def requests_adding():
        for n in range(20_000):
            log.add({"experiment": "exp-1", "arm": "control", "user_id": n, "request_id": f"r{n}"}, EXPERIMENT)

    def writer():
        while not stop.is_set():
            log.flush()
    try:
        adders = [threading.Thread(target=requests_adding) for _ in range(2)]
        flusher = threading.Thread(target=writer)
        for thread in (*adders, flusher):
            thread.start()
        for thread in adders:
            thread.join()
        stop.set()
        flusher.join()
    finally:
        sys.setswitchinterval(interval)
    assert log._buffered_bytes == sum(len(encoded) for _, encoded in log._buffer)
