"""Helpers for tests and benchmarks: a real redis-server and the real service (gunicorn) on free loopback ports,
waiting for a condition."""
from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
import requests

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open until every one is picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception:  # noqa: BLE001 - keep polling until the deadline
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")



RATINGS = "user_id int, movie_id int, rating double, ts long"  # the raw ratings' schema, for tiny test frames


def write_config(path: Path, dotted: dict) -> Path:
    """A YAML config file holding `dotted` settings ({"als.implicit.rank": 8, ...}) as the loader reads them."""
    import yaml
    tree: dict = {}
    for key, value in dotted.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(tree))
    return path


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


class RedisServer:
    """A real redis-server process on 127.0.0.1, with its own folder; can be stopped and started again."""

    def __init__(self, folder: Path, password: str | None = None, port: int | None = None):
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed: run `make setup`")
        self.folder, self.password, self.port = Path(folder), password, port or free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self, extra_args: list[str] | None = None) -> "RedisServer":
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
                "--save", "", "--appendonly", "no", "--protected-mode", "yes", *(extra_args or [])]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping(), 10, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class RedisClusterServers:
    """A real Redis Cluster on 127.0.0.1: `masters` redis-server processes with --cluster-enabled, joined by
    `redis-cli --cluster create` (no replicas), slots spread evenly."""

    def __init__(self, folder: Path, masters: int = 3):
        self.folder = Path(folder)
        ports = free_ports(2 * masters)  # a client port and a cluster-bus port per node
        self.nodes = [RedisServer(self.folder / f"node{i}", port=ports[i]) for i in range(masters)]
        self.bus_ports = ports[masters:]

    @property
    def url(self) -> str:
        """A seed node; the client discovers the others."""
        return self.nodes[0].url

    def start(self) -> "RedisClusterServers":
        for node, bus in zip(self.nodes, self.bus_ports):
            # The cluster bus defaults to port + 10000, which does not exist above 55535: give it a free one.
            node.start(["--cluster-enabled", "yes", "--cluster-config-file", str(node.folder / "nodes.conf"),
                        "--cluster-node-timeout", "5000", "--cluster-port", str(bus)])
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_until(lambda: all(b"cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO")
                               for n in self.nodes), 30, what="cluster_state:ok on every node")
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class GunicornService:
    """The lookup service as deployed: gunicorn with serving/gunicorn.conf.py on a free loopback port."""

    def __init__(self, redis_url: str, folder: Path, workers: int = 2, env: dict | None = None,
                 app: str = "serving.wsgi:app"):
        self.port, self.folder, self.app = free_port(), Path(folder), app
        self.env = {**os.environ, "RECO_REDIS_URL": redis_url, "RECO_PORT": str(self.port),
                    "GUNICORN_WORKERS": str(workers), "GUNICORN_LOGLEVEL": "warning",
                    "PROMETHEUS_MULTIPROC_DIR": str(self.folder), **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "GunicornService":
        gunicorn = [str(Path(sys.executable).parent / "gunicorn"), "-c", str(REPO / "serving" / "gunicorn.conf.py"),
                    self.app]
        self.log = open(self.folder / "gunicorn.log", "wb")
        self.process = subprocess.Popen(gunicorn, env=self.env, cwd=REPO, stdout=self.log, stderr=self.log)
        wait_until(lambda: requests.get(f"{self.base_url}/readyz", timeout=1).ok, 30, what="gunicorn")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.log.close()


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
