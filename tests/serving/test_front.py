"""The service as `make serve`, `make demo` and compose deploy it: a real nginx (conf/nginx/reco.conf.template,
through serving/front.py) in front of gunicorn's sync workers."""
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from conf.settings import EventSettings
from serving import front
from tests.support import free_port, wait_until

TRICKLERS = 8  # more than the service's 2 workers: without a front, they hold every worker


def start_front(folder: Path, upstream: str, rate_per_s: int = front.RATE_PER_S) -> str:
    port = free_port()
    front.start(folder, f"127.0.0.1:{port}", upstream, rate_per_s)
    base_url = f"http://127.0.0.1:{port}"
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 10, what="nginx")
    return base_url


@pytest.fixture(scope="module")
def fronted(service, tmp_path_factory):
    base_url, config, version = service
    folder = tmp_path_factory.mktemp("front")
    yield start_front(folder, base_url.removeprefix("http://")), base_url
    front.stop(folder)


class Trickler:
    """A client that sends a request's headers one byte every half second (slowloris)."""

    def __init__(self, base_url: str):
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.stopped = threading.Event()
        threading.Thread(target=self._send, daemon=True).start()

    def _send(self):
        request = b"GET /v1/popular?k=1 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        for byte in request:
            if self.stopped.wait(0.5):
                return
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                return

    def close(self):
        self.stopped.set()
        self.sock.close()


def slowest_of_lookups(base_url: str, count: int, timeout: float) -> float:
    slowest = 0.0
    for user in range(1, count + 1):
        started = time.perf_counter()
        try:
            assert requests.get(f"{base_url}/v1/users/{user}/recommendations?k=10", timeout=timeout).ok
        except requests.Timeout:
            return float("inf")
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def test_clients_trickling_headers_do_not_slow_lookups_through_the_front(fronted):
    front_url, direct_url = fronted
    tricklers = [Trickler(front_url) for _ in range(TRICKLERS)]
    try:
        time.sleep(1)
        assert slowest_of_lookups(front_url, 30, timeout=5) < 1.0
    finally:
        for trickler in tricklers:
            trickler.close()
    # The same clients straight at gunicorn hold both sync workers: a lookup waits (the test above could fail).
    tricklers = [Trickler(direct_url) for _ in range(TRICKLERS)]
    try:
        time.sleep(1)
        assert slowest_of_lookups(direct_url, 3, timeout=2) == float("inf")
    finally:
        for trickler in tricklers:
            trickler.close()


def test_answers_through_the_front_are_the_service_answers(fronted):
    front_url, direct_url = fronted
    for path in ("/v1/users/196/recommendations?k=5", "/v1/movies/50/similar?k=5", "/v1/popular?genre=Comedy&k=5",
                 "/v1/users/abc/recommendations", "/v1/movies/99999999"):
        through, direct = requests.get(front_url + path, timeout=5), requests.get(direct_url + path, timeout=5)
        assert through.status_code == direct.status_code
        strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
        assert strip(through.json()) == strip(direct.json())
        assert through.headers["X-Request-Id"] and "nginx/" not in through.headers.get("Server", "")


def test_what_the_front_refuses_is_a_json_error(fronted):
    front_url, _ = fronted
    refused = {
        "body too large": (requests.post(f"{front_url}/v1/events", data=b"x" * 70_000, timeout=5), 413),
        "request line too long": (requests.get(f"{front_url}/v1/{'a' * 9000}", timeout=5), 414),
        "header too large": (requests.get(f"{front_url}/v1/popular", headers={"X-Big": "a" * 9000}, timeout=5),
                             431),
        "metrics are not public": (requests.get(f"{front_url}/metrics", timeout=5), 404),
    }
    for what, (response, status) in refused.items():
        assert response.status_code == status, what
        assert response.headers["Content-Type"] == "application/json", what
        assert set(response.json()) == {"error", "detail"}, what


def test_the_front_body_limit_is_the_intake_limit():
    """nginx refuses a body the service would refuse anyway, and nothing the service would take."""
    template = front.TEMPLATE.read_text()
    kib = int(re.search(r"client_max_body_size (\d+)k;", template).group(1))
    assert kib * 1024 == EventSettings().max_body_bytes
    assert f"client_body_buffer_size {kib}k;" in template  # held in memory, never a temporary file


def test_one_address_gets_a_bounded_share_of_connections_and_a_dead_service_a_503(tmp_path):
    """Against an upstream that accepts and never answers: 32 requests from one client wait, its 33rd is refused
    at once (429), and another client behind the same balancer (X-Forwarded-For from the trusted proxy) still
    gets through: before, behind a balancer every client shared one bucket of 32. Against a closed port, a JSON
    503 with Retry-After."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)
    held = []
    threading.Thread(target=lambda: [held.append(silent.accept()) for _ in iter(int, 1)], daemon=True).start()
    base_url = start_front(tmp_path / "silent", f"127.0.0.1:{silent.getsockname()[1]}")
    waiting = []
    client_a, client_b = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.9"}
    try:
        for _ in range(32):
            host, port = base_url.removeprefix("http://").split(":")
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"GET /v1/popular HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
            waiting.append(sock)
        wait_until(lambda: len(held) >= 32, 10, what="the upstream to hold 32 requests")
        refused = requests.get(f"{base_url}/v1/popular", headers=client_a, timeout=5)
        assert refused.status_code == 429 and refused.json()["error"] == "too_many_requests"
        assert refused.headers["Retry-After"] == "1"
        with pytest.raises(requests.ReadTimeout):  # forwarded, and held by the silent upstream like the rest
            requests.get(f"{base_url}/v1/popular", headers=client_b, timeout=1)
    finally:
        for sock in waiting:
            sock.close()
        front.stop(tmp_path / "silent")
        silent.close()
    dead_url = start_front(tmp_path / "dead", f"127.0.0.1:{free_port()}")
    try:
        down = requests.get(f"{dead_url}/v1/popular", timeout=5)
        assert down.status_code == 503 and down.json()["error"] == "unavailable" and down.headers["Retry-After"]
    finally:
        front.stop(tmp_path / "dead")


def connect_from(source: str, base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.bind((source, 0))  # the whole of 127/8 is this machine: each source address a client of its own
    sock.settimeout(5)
    sock.connect((host, int(port)))
    return sock


def answered(sock: socket.socket) -> bool:
    """One keep-alive request on `sock`: True when an HTTP answer comes back (the connection then stays open and
    idle), False when the front closed the connection instead."""
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        return sock.recv(4096).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def test_idle_keep_alive_connections_are_capped_per_address_but_not_for_the_trusted_proxy(service, tmp_path):
    """Each connection answered once, then left open and idle, as a browser's keep-alive or a slow attacker's:
    the http server's limit_conn never counts those, so one address could hold every connection nginx has. The
    public listener caps them per address (here 8); another address and the trusted proxy (whose connections
    are its clients') still get through."""
    folder = tmp_path / "capped"
    port = free_port()
    front.start(folder, f"127.0.0.1:{port}", service[0].removeprefix("http://"), max_connections=8)
    base_url = f"http://127.0.0.1:{port}"
    held: list[socket.socket] = []
    try:
        wait_until(lambda: requests.get(f"{base_url}/healthz", timeout=1).ok, 10, what="nginx")
        for _ in range(8):
            held.append(connect_from("127.0.0.2", base_url))
            assert answered(held[-1])
        held.append(connect_from("127.0.0.2", base_url))
        assert not answered(held[-1])  # the ninth from that address is closed unanswered
        held.append(connect_from("127.0.0.3", base_url))
        assert answered(held[-1])  # another client is not held back
        for _ in range(12):  # the balancer's connections carry many clients: never capped here
            held.append(connect_from("127.0.0.1", base_url))
            assert answered(held[-1])
        for sock in held[:8]:
            sock.close()
        wait_until(lambda: answered(connect_from("127.0.0.2", base_url)), 5, what="a freed place")
    finally:
        for sock in held:
            sock.close()
        front.stop(folder)


def test_one_address_gets_a_bounded_rate_each_client_its_own(service, tmp_path):
    """limit_req per client address: a burst of twice the rate passes at once, beyond it 429 in the API's JSON
    shape; a second client behind the same trusted proxy has its own bucket."""
    base_url = start_front(tmp_path / "rated", service[0].removeprefix("http://"), rate_per_s=20)
    try:
        with requests.Session() as session:
            statuses = [session.get(f"{base_url}/healthz", headers={"X-Forwarded-For": "203.0.113.7"},
                                    timeout=5) for _ in range(100)]
            other = session.get(f"{base_url}/healthz", headers={"X-Forwarded-For": "198.51.100.9"}, timeout=5)
    finally:
        front.stop(tmp_path / "rated")
    codes = [r.status_code for r in statuses]
    assert codes[:40].count(200) == 40 and 429 in codes  # the burst of 40 passes, then the rate holds
    limited = next(r for r in statuses if r.status_code == 429)
    assert limited.json()["error"] == "too_many_requests" and limited.headers["Retry-After"] == "1"
    assert other.status_code == 200


def test_a_method_nginx_refuses_itself_is_a_json_405_with_allow(fronted):
    """TRACE never reaches the service: nginx answered its own HTML 405 without an Allow header."""
    front_url, _ = fronted
    for path, allowed in (("/v1/popular", {"GET", "HEAD", "OPTIONS"}), ("/v1/events", {"POST", "OPTIONS"})):
        response = requests.request("TRACE", front_url + path, timeout=5)
        assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
        assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed
        assert response.headers["Content-Type"] == "application/json"
