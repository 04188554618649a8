"""The speed layer as it runs: a real `python -m jobs.speed_layer` process folding the events posted through the
real intake into the shared ML-100K run published into a Redis of this module's own; answers read through the
service's app."""
import os
import signal
import subprocess
import sys
import time

import pytest

from jobs import publish
from schemas import redis_keys as rk
from serving import create_app
from tests.support import REPO, RedisServer, wait_until, write_config

TOKEN = "speed-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class SpeedLayerProcess:
    def __init__(self, settings_file, redis_url, log_path):
        self.args = [sys.executable, "-m", "jobs.speed_layer", "--config", str(settings_file)]
        self.env = {**os.environ, "RECO_REDIS_URL": redis_url}
        self.log_path, self.process = log_path, None

    def start(self) -> "SpeedLayerProcess":
        self.process = subprocess.Popen(self.args, env=self.env, cwd=REPO, stdout=open(self.log_path, "ab"),
                                        stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


@pytest.fixture(scope="module")
def speed(pipeline_run, spark, tmp_path_factory):
    config, run_id, _, _ = pipeline_run
    folder = tmp_path_factory.mktemp("speed")
    server = RedisServer(folder / "redis").start()
    config = config.model_copy(update={
        "redis": config.redis.model_copy(update={"url": server.url}),
        "events": config.events.model_copy(update={"token": TOKEN})})
    version = publish.run(config, run_id, spark=spark)["version"]
    settings = write_config(folder / "speed.yaml", {"data.root": config.data_root})
    layer = SpeedLayerProcess(settings, server.url, folder / "speed.log").start()
    yield config, server, version, layer, run_id
    layer.stop()
    server.stop()


def answer(client, user, k=10):
    return client.get(f"/v1/users/{user}/recommendations?k={k}").get_json()


def folded(client, user, events, k=10):
    """The person's answer once it is their fold-in with `events` events."""
    return wait_until(lambda: (a := answer(client, user, k))["source"] == "fold_in"
                      and a["fold_in"]["events"] == events and a, 20, 0.05, f"user {user}'s fold-in")


def test_a_new_user_gets_a_list_folded_from_their_ratings(speed):
    config, _, version, _, _ = speed
    client = create_app(config).test_client()
    horror = [i["movie_id"] for i in client.get("/v1/popular?genre=Horror&k=10").get_json()["items"]]
    user = 910_001
    assert answer(client, user)["source"] == "popular"
    ratings = [{"user_id": user, "movie_id": m, "type": "rating", "rating": 5} for m in horror]
    assert client.post("/v1/events", json={"events": ratings}, headers=AUTH).status_code == 202
    body = folded(client, user, 10)
    assert body["version"] == version and "fallback" not in body and len(body["items"]) == 10
    shown = body["items"]
    assert not set(horror) & {i["movie_id"] for i in shown}
    # Like what they rated: horror and thrillers (ML-100K has few horror movies beyond the ten), far more than
    # among the movies everyone rates.
    dark = lambda items: sum(bool({"Horror", "Thriller"} & set(i["genres"])) for i in items)  # noqa: E731
    assert dark(shown) >= 7, [(i["title"], i["genres"]) for i in shown]
    assert dark(client.get("/v1/popular?k=10").get_json()["items"]) <= 3


def test_a_known_users_rating_moves_their_list_and_leaves_it(speed):
    config, _, _, _, _ = speed
    client = create_app(config).test_client()
    user = 7
    before = answer(client, user, 50)
    assert before["source"] == "version"
    first = before["items"][0]["movie_id"]
    assert client.post("/v1/events", json={"events": [{"user_id": user, "movie_id": first, "type": "rating",
                                                       "rating": 1}]}, headers=AUTH).status_code == 202
    after = folded(client, user, 1, 50)
    after_ids = [i["movie_id"] for i in after["items"]]
    assert first not in after_ids and len(after_ids) == 50
    assert after_ids != [i["movie_id"] for i in before["items"]][1:]  # re-solved, not just filtered


def test_killed_mid_stream_every_event_is_folded_in_once(speed):
    """Events keep arriving while the speed layer is SIGKILLed and restarted: each person's fold-in counts
    exactly the events they sent, and the group holds nothing unacknowledged."""
    config, server, _, layer, _ = speed
    client = create_app(config).test_client()
    users = list(range(920_001, 920_011))
    movies = [i["movie_id"] for i in client.get("/v1/popular?k=60").get_json()["items"]]
    sent = {user: 0 for user in users}
    for round_ in range(6):
        if round_ == 3:
            layer.kill()
        events = [{"user_id": user, "movie_id": movies[(round_ * 10 + i) % 60], "type": "click"}
                  for i, user in enumerate(users)]
        assert client.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 202
        for user in users:
            sent[user] += 1
        time.sleep(0.2)
    layer.start()
    for user in users:
        assert folded(client, user, sent[user])["fold_in"]["events"] == 6
    wait_until(lambda: server.client().xpending(rk.EVENTS, "speed")["pending"] == 0, 10, what="acknowledged")


def test_a_new_version_never_serves_lists_folded_into_the_old_one(speed, spark):
    config, server, old, layer, run_id = speed
    client = create_app(config).test_client()
    user = 930_001
    horror = [i["movie_id"] for i in client.get("/v1/popular?genre=Horror&k=3").get_json()["items"]]
    events = [{"user_id": user, "movie_id": m, "type": "rating", "rating": 5} for m in horror]
    assert client.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 202
    assert folded(client, user, 3)["version"] == old
    layer.stop()
    new = publish.run(config, run_id, spark=spark, force=True)["version"]
    time.sleep(config.serving.pointer_ttl + 0.1)
    stale = answer(client, user)
    assert stale["version"] == new and stale["source"] != "fold_in"  # the fresh list names the old version
    assert rk.decode(server.client().get(rk.fresh(user)))["version"] == old
    layer.start()
    again = folded(client, user, 3)
    assert again["version"] == new


def test_during_an_experiment_each_person_is_folded_into_their_arms_version(speed, spark):
    from jobs.lib.loop import experiment_control
    from schemas.experiments import TREATMENT, arm_of
    config, server, _, _, run_id = speed
    client = create_app(config).test_client()
    live = server.client().get(rk.LIVE).decode()
    treatment = publish.run(config, run_id, spark=spark, candidate=True, share=0.5, salt="speed-arms")["version"]
    experiment = rk.decode(server.client().get(rk.EXPERIMENT))
    try:
        people = {arm_of(experiment, user): user for user in range(940_001, 940_050)}
        movie = client.get("/v1/popular?k=1").get_json()["items"][0]["movie_id"]
        for arm, user in people.items():
            assert client.post("/v1/events", json={"events": [{"user_id": user, "movie_id": movie, "type": "rating",
                                                               "rating": 5}]}, headers=AUTH).status_code == 202
        for arm, user in people.items():
            body = folded(client, user, 1)
            assert body["version"] == (treatment if arm == TREATMENT else live) and body["arm"] == arm
    finally:
        experiment_control.end(server.client(), "aborted", experiment["id"], reason="test")


def test_two_speed_layers_share_the_people_by_id(speed):
    """`--shard 1/2` and `--shard 2/2`, each in its own consumer group: every person is folded in once, by the
    shard their id falls to, and each shard holds only its own people."""
    import orjson
    import requests

    from tests.support import free_ports
    config, server, _, layer, _ = speed
    client = create_app(config).test_client()
    layer.stop()
    folder = layer.log_path.parent
    ports = free_ports(2)
    shards = []
    for k, port in zip((1, 2), ports):
        shard = SpeedLayerProcess(folder / "speed.yaml", server.url, folder / f"shard-{k}.log")
        shard.args += ["--shard", f"{k}/2", "--consumer", f"shard-{k}", "--metrics-port", str(port)]
        shards.append(shard.start())
    try:
        users = list(range(950_001, 950_011))
        movie = client.get("/v1/popular?k=1").get_json()["items"][0]["movie_id"]
        events = [{"user_id": user, "movie_id": movie, "type": "click"} for user in users]
        assert client.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 202
        for user in users:
            assert folded(client, user, 1)["fold_in"]["events"] == 1
        redis_ = server.client()
        for k in (1, 2):
            wait_until(lambda: redis_.xpending(rk.EVENTS, rk.speed_group(k, 2))["pending"] == 0, 10,
                       what=f"shard {k} acknowledged")
        # Who each shard holds: the people with events since the live version, by the parity of their id.
        meta = rk.decode(redis_.get(rk.key(redis_.get(rk.LIVE).decode(), "meta")))
        since = meta.get("events_high_water") or "0-0"
        people = {orjson.loads(fields[b"event"])["user_id"] for _, fields in redis_.xrange(rk.EVENTS, min=f"({since}")}
        for k, port in zip((1, 2), ports):
            held = wait_until(lambda: next((float(line.split()[-1]) for line in requests.get(
                f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines()
                if line.startswith("reco_speed_people ")), None), 10, what=f"shard {k}'s metrics")
            assert held == len({user for user in people if user % 2 == k - 1}) > 0
    finally:
        for shard in shards:
            shard.stop()
        layer.start()
