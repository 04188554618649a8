"""The lookup service against a real redis-server holding the published ML-100K run."""
import json
import re
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest
import requests

from jobs import publish
from schemas import redis_keys as rk
from schemas.storage import read_json
from serving.app import create_app, load_openapi
from tests.support import GunicornService, RedisServer, wait_until


@pytest.fixture(scope="module")
def live(pipeline_run, spark, redis_server):
    config, run_id, paths, _ = pipeline_run
    redis_server.client().flushdb()
    version = publish.run(config, run_id, spark=spark)["version"]
    return config, paths, version


@pytest.fixture(scope="module")
def client(live):
    return create_app(live[0]).test_client()


def parquet_list(spark, path, where, order="rank", column="movie_id"):
    return [r[column] for r in spark.read.parquet(path).where(where).orderBy(order).collect()]


def test_user_recommendations_match_the_run(client, live, spark):
    _, paths, version = live
    body = client.get("/v1/users/42/recommendations?k=10").get_json()
    assert body["version"] == version and body["user_id"] == 42 and "fallback" not in body
    assert [i["movie_id"] for i in body["items"]] == parquet_list(spark, paths.user_recs, "user_id = 42")[:10]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    titles = {r["movie_id"]: r["title"] for r in spark.read.parquet(paths.clean_movies).collect()}
    assert all(i["title"] == titles[i["movie_id"]] for i in body["items"])


def test_genre_filter_and_unknown_user_fallback(client, live, spark):
    _, paths, _ = live
    comedies = client.get("/v1/users/42/recommendations?k=50&genre=comedy").get_json()
    assert comedies["genre"] == "Comedy" and comedies["items"]
    assert all("Comedy" in i["genres"] for i in comedies["items"])
    unknown = client.get("/v1/users/999999/recommendations?k=5").get_json()
    assert unknown["fallback"] == "popular" and unknown["reason"]
    assert [i["movie_id"] for i in unknown["items"]] == parquet_list(spark, paths.popular, "genre = '_all'")[:5]
    horror = client.get("/v1/users/999999/recommendations?k=3&genre=Horror").get_json()
    assert [i["movie_id"] for i in horror["items"]] == parquet_list(spark, paths.popular, "genre = 'Horror'")[:3]


def test_similar_popular_details_search_version(client, live, spark):
    config, paths, version = live
    similar = client.get("/v1/movies/1/similar?k=5").get_json()
    assert [i["movie_id"] for i in similar["items"]] == parquet_list(
        spark, paths.item_neighbors, "movie_id = 1", column="neighbor_id")[:5]
    popular = client.get("/v1/popular?genre=Drama&k=4").get_json()
    assert [i["movie_id"] for i in popular["items"]] == parquet_list(spark, paths.popular, "genre = 'Drama'")[:4]
    movie = client.get("/v1/movies/1").get_json()
    assert (movie["title"], movie["year"], movie["genres"]) == ("Toy Story", 1995, ["Animation", "Children", "Comedy"])
    assert movie["n_ratings"] == 452 and movie["version"] == version
    found = client.get("/v1/movies?q=STAR wars").get_json()
    assert found["items"][0]["title"] == "Star Wars"
    assert all({"star", "wars"} <= set(rk.title_tokens(i["title"])) for i in found["items"])
    assert client.get("/v1/movies?q=miserables").get_json()["items"][0]["title"] == "Misérables, Les"
    assert client.get("/v1/movies?q=zzzzqqq").get_json()["items"] == []
    assert client.get("/v1/movies?q=%21%21%21").get_json()["items"] == []  # no word in it: nothing found
    assert client.get("/v1/movies?q=sci-fi").status_code == 200
    meta = client.get("/v1/version").get_json()
    assert meta["version"] == version and meta["dataset"] == "ml-100k"
    assert meta["metrics"]["ndcg@10"] == read_json(paths.metrics)["models"]["als"]["ndcg@10"]
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready", "version": version}


BAD_REQUESTS = [
    ("/v1/users/abc/recommendations", 400), ("/v1/users/-1/recommendations", 400),
    ("/v1/users/0/recommendations", 400), ("/v1/users/1.5/recommendations", 400),
    ("/v1/users/99999999999999999999/recommendations", 400), ("/v1/users/2147483648/recommendations", 400),
    ("/v1/users/%F0%9F%8E%AC/recommendations", 400), ("/v1/users/%D9%A3/recommendations", 400),
    ("/v1/users/1/recommendations?k=0", 400), ("/v1/users/1/recommendations?k=-3", 400),
    ("/v1/users/1/recommendations?k=51", 400), ("/v1/users/1/recommendations?k=abc", 400),
    ("/v1/users/1/recommendations?k=1e3", 400), ("/v1/users/1/recommendations?k=", 400),
    ("/v1/users/1/recommendations?k=99999999999999999", 400),
    ("/v1/users/1/recommendations?genre=Nope", 400), ("/v1/users/1/recommendations?genre=%C3%A9%E2%9C%93", 400),
    ("/v1/popular?k=101", 400), ("/v1/popular?genre=" + "x" * 5000, 400),
    ("/v1/movies/abc", 400), ("/v1/movies/99999", 404), ("/v1/movies/99999/similar", 404),
    ("/v1/movies/1/similar?k=0", 400), ("/v1/movies?q=", 400), ("/v1/movies?q=" + "a" * 101, 400),
    ("/v1/movies", 400), ("/v1/popular?genre=", 400), ("/v1/popular?genre=COMEDY", 400),
    ("/v1/nothing-here", 404), ("/v1/users//recommendations", 404),
]


@pytest.mark.parametrize("path, status", BAD_REQUESTS)
def test_bad_input_gets_a_4xx_json_error(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error", "detail"} and body["detail"]


def test_wrong_method_is_a_json_405(client):
    response = client.post("/v1/popular")
    assert response.status_code == 405 and response.get_json()["error"]


def test_openapi_document_matches_the_routes(client):
    app = client.application
    document = load_openapi(app.config["RECO_LIMITS"])
    # /metrics is scraped on the service's own port and never served through the front people reach
    # (docs/operations.md): it is not part of the public document.
    public = [rule for rule in app.url_map.iter_rules() if rule.endpoint not in ("web.static", "metrics")]
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) for rule in public}
    assert routes == set(document["paths"])
    for rule in public:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert set(document["paths"][path]) == {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert client.get("/openapi.json").get_json() == document


def test_web_page_works_offline(client):
    page = client.get("/").get_data(as_text=True)
    assert "<form id=\"user-form\">" in page and "Comedy" in page
    assert not re.search(r"(src|href)=\"https?://", page)  # nothing from a CDN
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    for path in ("/", "/static/app.js"):  # the page's own files only; tests/serving/test_web_page.py runs it under this
        policy = client.get(path).headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    for path in ("/", "/v1/popular", "/v1/users/x/recommendations", "/nowhere"):
        assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in client.get("/v1/popular").headers


def test_prometheus_metrics(client):
    client.get("/v1/users/3/recommendations")
    client.get("/v1/users/987654/recommendations")
    client.get("/v1/users/abc/recommendations")
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'reco_http_request_duration_seconds_count\{endpoint="/v1/users/<user_id>/recommendations",'
                     r'status="200"\} [1-9]', text)
    assert 'status="400"' in text
    assert re.search(r'reco_fallbacks_total\{reason="popular"\} [1-9]', text)


def test_redis_outage_gives_503_then_recovers_without_restart(live, spark, tmp_path):
    config, _, _ = live
    server = RedisServer(tmp_path / "redis").start()
    try:
        outage_config = config.model_copy(update={
            "redis": config.redis.model_copy(update={"url": server.url}),
            "serving": config.serving.model_copy(update={"pointer_ttl": 0.2})})
        client = create_app(outage_config).test_client()
        not_ready = client.get("/readyz")  # nothing published yet
        assert not_ready.status_code == 503 and not_ready.get_json()["error"] == "not_ready"
        assert not_ready.headers["Retry-After"] == "10"
        publish.run(outage_config, config_run_id(live), spark=spark)
        assert client.get("/v1/users/1/recommendations").status_code == 200
        server.client().save()  # the restarted server loads this snapshot
        server.stop()
        wait_until(lambda: client.get("/v1/users/1/recommendations").status_code == 503, 5, what="503")
        response = client.get("/v1/users/2/recommendations")
        assert response.status_code == 503 and response.get_json()["error"] == "unavailable"
        assert response.headers["Retry-After"] == "1"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200  # the process itself is fine
        server.start()
        wait_until(lambda: client.get("/v1/users/1/recommendations").status_code == 200, 10, what="recovery")
        assert client.get("/readyz").status_code == 200
        assert "redis_errors_total" in client.get("/metrics").get_data(as_text=True)
    finally:
        server.stop()


def config_run_id(live):
    return Path(live[1].root).name


def test_read_only_acl_user_can_serve_but_not_write(live, redis_server):
    config, _, version = live
    admin = redis_server.client()
    # The read-only ACL docs/security-and-reliability.md documents for a service without intake.
    admin.execute_command("ACL", "SETUSER", "reco-reader", "on", ">reader-secret", "resetkeys", "%R~reco:*",
                          "resetchannels", "&__redis__:invalidate", "-@all", "+get", "+mget", "+smembers",
                          "+lrange", "+ping", "+client|tracking", "+subscribe")
    try:
        reader_url = f"redis://reco-reader:reader-secret@127.0.0.1:{redis_server.port}/0"
        reader_config = config.model_copy(update={"redis": config.redis.model_copy(update={"url": reader_url})})
        app = create_app(reader_config)
        reader = app.test_client()
        assert reader.get("/v1/users/1/recommendations").get_json()["version"] == version
        assert reader.get("/readyz").status_code == 200
        wait_until(lambda: app.extensions["reco_people"].copy.tracked, 5, what="the people copy tracked")
        # Without CLIENT TRACKING it still answers, reading each person from Redis every time.
        admin.execute_command("ACL", "SETUSER", "reco-reader", "-client|tracking")
        untracked = create_app(reader_config)
        assert untracked.test_client().get("/v1/users/1/recommendations").get_json()["version"] == version
        time.sleep(0.5)  # the watcher's attempt was refused
        assert untracked.test_client().get("/v1/users/1/recommendations").get_json()["version"] == version
        assert not untracked.extensions["reco_people"].copy.tracked
        import redis
        with pytest.raises(redis.exceptions.NoPermissionError):
            redis.Redis.from_url(reader_url).set(rk.LIVE, "hijacked")
        assert admin.get(rk.LIVE).decode() == version
    finally:
        admin.execute_command("ACL", "DELUSER", "reco-reader")


def raw_request(port: int, request: bytes) -> tuple[int, dict]:
    """Send bytes no HTTP client would (a header twice, raw bytes in a URL); (status, JSON body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
        connection.sendall(request)
        answer = b"".join(iter(lambda: connection.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    return int(head.split()[1]), json.loads(body)


def test_gunicorn_serves_the_app(live, tmp_path):
    config, _, version = live
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    service = GunicornService(config.redis.url, tmp_path, env={"TMPDIR": str(scratch)})
    del service.env["PROMETHEUS_MULTIPROC_DIR"]  # as `make serve` starts it: the config makes the metrics folder
    service.start()
    try:
        base = service.base_url
        for user in range(1, 30):
            body = requests.get(f"{base}/v1/users/{user}/recommendations?k=3", timeout=2).json()
            assert body["version"] == version and len(body["items"]) == 3
        assert requests.get(f"{base}/v1/users/x/recommendations", timeout=2).status_code == 400
        metrics = requests.get(f"{base}/metrics", timeout=2).text
        total = sum(float(m) for m in re.findall(
            r'reco_http_request_duration_seconds_count\{endpoint="/v1/users/<user_id>/recommendations",'
            r'status="200"\} (\S+)', metrics))
        assert total == 29  # aggregated over the worker processes
        (metrics_folder,) = scratch.glob("reco-prometheus-*")
        # Refused by gunicorn's parser before the app runs: still the API's JSON errors.
        too_long = requests.get(f"{base}/v1/movies?q={'a' * 5000}", timeout=2)
        assert too_long.status_code == 414 and too_long.json()["error"] == "uri_too_long"
        header_twice = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                        b"Content-Type: application/json\r\nContent-Type: text/plain\r\n\r\n{}")
        status, body = raw_request(service.port, header_twice)
        assert status == 400 and body["error"] == "bad_request" and "CONTENT-TYPE" in body["detail"]
        # Raw bytes in the URL, not %E9: gunicorn refuses the request line (the app would refuse its query too,
        # tests/unit/serving/test_api_parameters.py).
        not_ascii = b"GET /v1/users/1/recommendations?k=3&genre=\xe9 HTTP/1.1\r\nHost: x\r\n\r\n"
        status, body = raw_request(service.port, not_ascii)
        assert status == 400 and body["error"] == "bad_request" and "request line" in body["detail"]
        many = requests.get(f"{base}/healthz", timeout=2, headers={f"X-H{i}": "1" for i in range(120)})
        assert many.status_code == 431 and many.json()["error"] == "request_header_fields_too_large"
        master = psutil.Process(service.process.pid)
        before = {worker.pid for worker in master.children()}
        master.send_signal(signal.SIGHUP)  # a reload: the config runs again, new workers, the same metrics folder
        wait_until(lambda: not before & {worker.pid for worker in master.children()}
                   and requests.get(f"{base}/healthz", timeout=2).ok, 30, what="reloaded workers")
        assert list(scratch.glob("reco-prometheus-*")) == [metrics_folder]
    finally:
        service.stop()
    assert not metrics_folder.exists()  # removed as gunicorn exited


def test_an_app_asks_for_the_next_ten_without_the_ones_it_showed(client):
    first = [i["movie_id"] for i in client.get("/v1/users/42/recommendations?k=20").get_json()["items"]]
    shown = ",".join(map(str, first[:10]))
    following = client.get(f"/v1/users/42/recommendations?k=10&exclude={shown}").get_json()
    assert [i["movie_id"] for i in following["items"]] == first[10:20]
    similar = [i["movie_id"] for i in client.get("/v1/movies/50/similar?k=12").get_json()["items"]]
    rest = client.get(f"/v1/movies/50/similar?k=10&exclude={similar[0]},{similar[1]}").get_json()["items"]
    assert [i["movie_id"] for i in rest] == similar[2:12]
    unknown = client.get(f"/v1/users/999999/recommendations?k=3&exclude={shown}").get_json()
    assert unknown["fallback"] == "popular" and not set(first[:10]) & {i["movie_id"] for i in unknown["items"]}
    too_many = client.get("/v1/users/42/recommendations?exclude=" + ",".join(["1"] * 101))
    assert too_many.status_code == 400 and too_many.get_json()["error"] == "bad_request"
