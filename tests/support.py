"""Helpers for tests: proxies that break a connection as networks do, comparisons of ranked lists, small frames;
and the real components the benchmarks start too (benchmarks/harness.py)."""
from __future__ import annotations

import math
import socket
import threading

from benchmarks.harness import (  # noqa: F401 - the tests' one place to import them from
    REPO,
    GunicornService,
    MlflowServer,
    RedisClusterServers,
    RedisServer,
    free_port,
    free_ports,
    wait_until,
    write_config,
)

RATINGS = "user_id int, movie_id int, rating double, ts long"  # the raw ratings' schema, for tiny test frames


def rows(frame, *order):
    """A small DataFrame's rows as tuples, in `order`."""
    return [tuple(r) for r in frame.orderBy(*order).collect()]


def assert_same_rankings(got: dict, expected: dict, rel: float = 1e-5, abs_: float = 1e-6, name: str = ""):
    """Ranked lists per query ({query: [(item, score), ...] best first}) are the same up to floating point.

    Two paths that compute the same scores (numpy blocks of other sizes, the driver against the executors, another
    BLAS kernel on another processor) may differ in the last bits, and so order items whose scores are equal within
    that rounding differently, or keep a different one of two near-equal items at the end of a list. Anything else
    must match: the same queries, the same score at every rank, every item's score the same in both, and an item
    found in one list only must score no better than the other list's last item (within the tolerance)."""
    def close(a, b):
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    assert got.keys() == expected.keys(), f"{name}: other queries"
    for query, ranked in got.items():
        want = expected[query]
        where = f"{name}: query {query}"
        assert len(ranked) == len(want), where
        for rank, ((_, score), (_, expected_score)) in enumerate(zip(ranked, want), 1):
            assert close(score, expected_score), f"{where}, rank {rank}: {score} against {expected_score}"
        for one, other in ((ranked, want), (want, ranked)):
            other_scores = dict(other)
            for item, score in one:
                if item in other_scores:
                    assert close(score, other_scores[item]), f"{where}, item {item}"
                else:
                    last = other[-1][1]
                    assert score <= last or close(score, last), f"{where}: item {item} only in one list"


class SilentProxy:
    """A TCP proxy in front of Redis whose path can die without a word: after `silence()`, every connection open
    at that moment stops forwarding in both directions but is never closed (no FIN, no RST), as when a host
    crashes, a fail-over moves the address, or a NAT forgets an idle flow. Connections opened later forward
    normally, as a client's reconnection would reach the new path."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._silenced: list[threading.Event] = []
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def silence(self) -> None:
        for event in list(self._silenced):
            event.set()

    def close(self) -> None:
        self.listener.close()
        ReplyDroppingProxy._close(*self._sockets)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            silenced = threading.Event()
            self._silenced.append(silenced)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target, silenced), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket, silenced: threading.Event) -> None:
        while data := ReplyDroppingProxy._recv(source):
            if silenced.is_set():
                continue  # swallowed: neither forwarded nor refused
            try:
                target.sendall(data)
            except OSError:
                return
        if not silenced.is_set():
            ReplyDroppingProxy._close(source, target)


class ReplyDroppingProxy:
    """A TCP proxy in front of Redis that can lose one reply: after `drop_reply_to(marker)`, the next command
    containing `marker` reaches Redis (which executes it), but its reply is thrown away and the client's
    connection is closed, as when the link fails between the write and its acknowledgement."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []  # every connection's two ends, closed by close()
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_reply_to(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def close(self) -> None:
        self.listener.close()
        self._close(*self._sockets)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            doomed = threading.Event()  # set when this connection's next reply is to be lost
            threading.Thread(target=self._to_redis, args=(client, upstream, doomed), daemon=True).start()
            threading.Thread(target=self._to_client, args=(upstream, client, doomed), daemon=True).start()

    def _to_redis(self, client: socket.socket, upstream: socket.socket, doomed: threading.Event) -> None:
        while data := self._recv(client):
            with self._lock:
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    doomed.set()  # before the command goes out, so before its reply can come back
            upstream.sendall(data)
        self._close(client, upstream)

    def _to_client(self, upstream: socket.socket, client: socket.socket, doomed: threading.Event) -> None:
        while data := self._recv(upstream):
            if doomed.is_set():
                self.dropped += 1
                break
            client.sendall(data)
        self._close(client, upstream)

    @staticmethod
    def _recv(sock: socket.socket) -> bytes:
        try:
            return sock.recv(65536)
        except OSError:
            return b""

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
