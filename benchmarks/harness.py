"""The real components, started on this machine for the benchmarks and the tests: a redis-server (or a Redis
Cluster) and the service under gunicorn on free loopback ports, a config file, waiting for a condition."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
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

    def start(self, extra_args: list[str] | None = None) -> RedisServer:
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

    def start(self) -> RedisClusterServers:
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

    def start(self) -> GunicornService:
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


class MlflowServer:
    """A real MLflow tracking server (`mlflow server` from .venv-mlflow, `make mlflow-deps`) on a free loopback
    port, over a SQLite store and an artifact folder of its own that outlive a restart; `kill()` is a SIGKILL."""

    BINARY = REPO / ".venv-mlflow" / "bin" / "mlflow"

    def __init__(self, folder: Path):
        if not self.BINARY.exists():
            raise RuntimeError(f"{self.BINARY} is missing: run `make mlflow-deps`")
        self.folder, self.port = Path(folder), free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        command = [str(self.BINARY), "server", "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                   "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.log = open(self.folder / "server.log", "ab")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=self.log, start_new_session=True)
        wait_until(lambda: requests.get(f"{self.url}/health", timeout=1).ok, 90, what="the MLflow server")
        return self

    def kill(self) -> None:
        """SIGKILL the server and everything it started (uvicorn's workers)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None
        self.log.close()
