"""The speed layer as it runs: a real `python -m serving.speed` process, as its own least-privilege Redis user,
folding the events posted through the real intake into the shared ML-100K run published into a Redis of this
module's own; answers read through the service's app. Faults done for real: SIGKILL mid-stream, a restart
after an ingest trimmed the stream, malformed entries written straight into the stream, a consumer that left
entries pending, more people than it may hold."""
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import redis
import requests

from conf import redis_client
from jobs import publish
from jobs.lib.loop.event_archive import archive_events
from schemas import redis_keys as rk
from serving.app import create_app
from serving.people import fresh_of
from tests.support import REPO, RedisServer, free_port, wait_until, write_config

TOKEN = "speed-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class SpeedLayerProcess:
    def __init__(self, settings_file, redis_url, log_path, *args: str):
        self.metrics_port = free_port()
        self.args = [sys.executable, "-m", "serving.speed", "--config", str(settings_file),
                     "--metrics-port", str(self.metrics_port), *args]
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

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (0 when it has none yet)."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))


@pytest.fixture(scope="module")
def speed(pipeline_run, spark, tmp_path_factory):
    config, run_id, _, _ = pipeline_run
    folder = tmp_path_factory.mktemp("speed")
    server = RedisServer(folder / "redis").start()
    # The speed layer reads its version's fold-in bundle (in the shared run's folder) and the event archive under
    # the data root: an archive of this module's own (its stream ids are this Redis's).
    data_root = folder / "data"
    data_root.mkdir()
    (data_root / "runs").symlink_to(os.path.join(config.data_root, "runs"))
    config = config.model_copy(update={
        "data": config.data.model_copy(update={"root": str(data_root)}),
        "redis": config.redis.model_copy(update={"url": server.url}),
        "events": config.events.model_copy(update={"token": TOKEN})})
    version = publish.run(config, run_id, spark=spark)["version"]
    server.client().execute_command("ACL", "SETUSER", "reco-speed", "on", ">speed-secret",
                                    *shlex.split(redis_client.user_rules("speed")))
    settings = write_config(folder / "speed.yaml", {"data.root": str(data_root), "speed.claim_idle_s": 1})
    as_speed = f"redis://reco-speed:speed-secret@127.0.0.1:{server.port}/0"
    layer = SpeedLayerProcess(settings, as_speed, folder / "speed.log").start()
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
    assert fresh_of(server.client().get(rk.fresh(user))).version == old
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
        for user in people.values():
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
    config, server, _, layer, _ = speed
    client = create_app(config).test_client()
    layer.stop()
    folder = layer.log_path.parent
    shards = [SpeedLayerProcess(folder / "speed.yaml", layer.env["RECO_REDIS_URL"], folder / f"shard-{k}.log",
                                "--shard", f"{k}/2", "--consumer", f"shard-{k}").start() for k in (1, 2)]
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
        for k, shard in zip((1, 2), shards):
            held = wait_until(lambda: shard.metric("reco_speed_people "), 10, what=f"shard {k}'s metrics")
            assert held == len({user for user in people if user % 2 == k - 1}) > 0
    finally:
        for shard in shards:
            shard.stop()
        layer.start()


def rate(client, user, movies, rating=5):
    events = [{"user_id": user, "movie_id": m, "type": "rating", "rating": rating} for m in movies]
    assert client.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 202


def test_restarted_after_an_ingest_trimmed_the_stream_it_still_folds_in_those_events(speed):
    """The next run's ingest archives the stream and trims it at its start, long before its version goes live (or
    while a canary or a held publication keeps it back). Before: a restart then rebuilt from the stream alone and
    lost those events."""
    config, server, _, layer, _ = speed
    client = create_app(config).test_client()
    user = 960_001
    movies = [i["movie_id"] for i in client.get("/v1/popular?genre=Horror&k=5").get_json()["items"]]
    rate(client, user, movies[:3])
    folded(client, user, 3)
    archived = archive_events(config.redis, config.data_root, "next-nightly-run")  # ingest of the next run
    assert archived["batch"]["rows"] >= 3 and server.client().xlen(rk.EVENTS) == 0
    layer.kill()
    layer.start()
    rate(client, user, movies[3:4])
    body = folded(client, user, 4)
    assert not set(movies[:4]) & {i["movie_id"] for i in body["items"]}


def test_malformed_entries_are_set_aside_while_valid_events_keep_folding_in(speed):
    """Before: one entry whose JSON is a list stopped the process (AttributeError), and every restart read it
    again: answers fell back for everyone."""
    config, server, _, layer, _ = speed
    client = create_app(config).test_client()
    admin = server.client()
    movie = client.get("/v1/popular?k=1").get_json()["items"][0]["movie_id"]
    set_aside = layer.metric("reco_speed_events_set_aside_total")
    malformed = [{"event": b"[1, 2, 3]"}, {"event": b"not json"}, {"something": b"else"},
                 {"event": b'{"user_id": 970001, "type": "rating", "rating": 4}'},             # no movie
                 {"event": b'{"user_id": "970001", "movie_id": 50, "type": "click"}'},         # a string id
                 {"event": b'{"user_id": 970001, "movie_id": 50, "type": "rating"}'}]          # no rating
    users = range(970_001, 970_004)
    for user, entry in zip(users, malformed):  # the valid and the malformed, interleaved
        admin.xadd(rk.EVENTS, entry)
        rate(client, user, [movie])
    for entry in malformed[3:]:
        admin.xadd(rk.EVENTS, entry)
    for user in users:
        folded(client, user, 1)
    assert layer.process.poll() is None
    wait_until(lambda: layer.metric("reco_speed_events_set_aside_total") == set_aside + 6, 10,
               what="six entries set aside")
    wait_until(lambda: admin.xpending(rk.EVENTS, "speed")["pending"] == 0, 10, what="all acknowledged")
    rate(client, users[0], [movie + 1] if movie + 1 != movie else [movie])  # still folding in
    folded(client, users[0], 2)


def test_entries_another_consumer_left_pending_are_claimed_by_one_started_with_make(speed):
    """A speed layer renamed (--consumer) or retired with entries read and not acknowledged: before, they stayed
    pending in the group for good. The new one is started as an operator would: `make speed-layer`."""
    config, server, _, layer, _ = speed
    admin = server.client()
    client = create_app(config).test_client()
    layer.stop()
    user = 980_001
    rate(client, user, [client.get("/v1/popular?k=1").get_json()["items"][0]["movie_id"]])
    try:  # the group exists once any speed layer has started
        admin.xgroup_create(rk.EVENTS, "speed", id="0", mkstream=True)
    except redis.ResponseError:
        pass
    taken = admin.xreadgroup("speed", "retired-consumer", {rk.EVENTS: ">"}, count=10)
    assert taken and admin.xpending(rk.EVENTS, "speed")["pending"] >= 1
    port = free_port()
    env = {**layer.env, "RECO_CONFIG": layer.args[layer.args.index("--config") + 1], "SPEED_METRICS_PORT": str(port)}
    operator = subprocess.Popen(["make", "-s", "speed-layer"], cwd=REPO, env=env, start_new_session=True,
                                stdout=open(layer.log_path, "ab"), stderr=subprocess.STDOUT)
    try:
        folded(client, user, 1)
        wait_until(lambda: admin.xpending(rk.EVENTS, "speed")["pending"] == 0, 15, what="claimed and acknowledged")
        assert "reco_speed_fold_ins_total" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        os.killpg(operator.pid, signal.SIGTERM)
        operator.wait(15)
        layer.start()


def test_it_holds_at_most_max_people_and_lets_the_least_recently_active_go(speed):
    from conf.settings import load_config
    from serving.speed.consumer import SpeedLayer
    config, server, version, layer, _ = speed
    client = create_app(config).test_client()
    layer.stop()
    try:
        bounded = load_config(layer.args[layer.args.index("--config") + 1], overrides={
            "redis.url": layer.env["RECO_REDIS_URL"], "speed.max_people": 3, "speed.write_batch": 2})
        inline = SpeedLayer(bounded, consumer="bounded")
        inline.ensure_group()
        inline.step(block_ms=10)  # loads the version and rebuilds: the people so far, three at most
        assert len(inline.people) == 3
        movies = [i["movie_id"] for i in client.get("/v1/popular?k=10").get_json()["items"]]
        people = list(range(990_001, 990_006))
        for user in people:
            rate(client, user, [movies[user % 10]])
            inline.step(block_ms=10)
        assert list(inline.people) == people[2:]  # the two least recently active let go
        assert {people[0], people[1]} <= inline.let_go
        admin = server.client()
        assert admin.exists(rk.fresh(people[0])) == 0 and admin.exists(rk.fresh(people[4])) == 1
        rate(client, people[0], [movies[9]])  # let go: not folded in until the next version
        inline.step(block_ms=10)
        assert admin.exists(rk.fresh(people[0])) == 0 and answer(client, people[0])["source"] != "fold_in"
    finally:
        layer.start()
