"""Publication, the service, rollback, retention and the event loop against a real 3-master Redis Cluster on
loopback (redis-server --cluster-enabled, redis-cli --cluster create)."""
import pytest
import redis

from conf import redis_client
from jobs import publish
from jobs.lib.loop.event_archive import archive_events
from jobs.lib.publication import versions as publication
from jobs.lib.runtime.leases import Lease
from schemas import redis_keys as rk
from serving.app import create_app
from tests.support import RedisClusterServers

TOKEN = "cluster-token"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    servers = RedisClusterServers(tmp_path_factory.mktemp("cluster")).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def on_cluster(pipeline_run, cluster):
    config, run_id, paths, _ = pipeline_run
    config = config.model_copy(update={
        "redis": config.redis.model_copy(update={"url": cluster.url, "cluster": True}),
        "events": config.events.model_copy(update={"token": TOKEN})})
    return config, run_id, paths


def test_a_version_spreads_over_every_master_and_flips_at_once(on_cluster, cluster, spark):
    config, run_id, _ = on_cluster
    first = publish.run(config, run_id, spark=spark)
    client = redis_client.writer(config.redis)
    assert publication.live_version(client) == first["version"]
    assert publication.count_version_keys(client, first["version"]) == first["keys"]
    # Each master holds a share of the version (keys spread by their own hash), none holds it all.
    per_node = [n.client().dbsize() for n in cluster.nodes]
    assert all(0.2 * first["keys"] < n < 0.5 * first["keys"] for n in per_node), per_node
    # The pointer and the registry share one slot (the flip is one MULTI/EXEC on one master).
    assert redis.RedisCluster.keyslot(client, rk.LIVE) == redis.RedisCluster.keyslot(client, rk.VERSIONS)

    app = create_app(config).test_client()
    body = app.get("/v1/users/1/recommendations?k=5").get_json()
    assert body["version"] == first["version"] and len(body["items"]) == 5 and "fallback" not in body
    search = app.get("/v1/movies?q=star+wars").get_json()  # one MGET per slot
    assert [i["movie_id"] for i in search["items"]][:1] == [50]

    second = publish.run(config, run_id, spark=spark)
    assert publication.live_version(client) == second["version"] and second["previous"] == first["version"]
    with Lease(client, "publish", "test-rollback") as lease:  # the fenced rollback's script on the {ctl} slot
        assert publication.rollback(client, lease)["live"] == first["version"]
        assert publication.rollback(client, lease, second["version"])["live"] == second["version"]
    third = publish.run(config.model_copy(update={"redis": config.redis.model_copy(update={"retention": 2})}),
                        run_id, spark=spark)
    assert third["pruned"] == [first["version"]]
    assert publication.count_version_keys(client, first["version"]) == 0
    assert publication.count_version_keys(client, second["version"]) == second["keys"]


def test_a_half_written_version_never_goes_live(on_cluster, spark, tmp_path):
    config, run_id, _ = on_cluster
    client = redis_client.writer(config.redis)
    live = publication.live_version(client)
    values = str(tmp_path / "values.parquet")
    spark.createDataFrame([("user:1", "[]")], "suffix string, value string").write.parquet(values)
    from jobs.lib.runtime.errors import JobError
    from jobs.lib.runtime.leases import Lease
    with Lease(client, "publish", "test") as lease, pytest.raises(JobError, match="incomplete"):
        publication.publish_version(client, config.redis, "broken", values, expected=2, meta=b'{"version": "broken"}',
                                    lease=lease)
    assert publication.live_version(client) == live
    assert publication.count_version_keys(client, "broken") == 0


def test_the_event_loop_on_a_cluster(on_cluster, tmp_path):
    config, _, _ = on_cluster
    app = create_app(config).test_client()
    events = [{"user_id": 900_500, "movie_id": m, "type": "rating", "rating": 5} for m in (50, 172, 174)]
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "cluster-1"}  # in the stream's slot
    answer = app.post("/v1/events", json={"events": events}, headers=headers)
    assert answer.status_code == 202, answer.get_json()
    retry = app.post("/v1/events", json={"events": events}, headers=headers)
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.get_json() == answer.get_json()
    body = app.get("/v1/users/900500/recommendations").get_json()
    assert body["fallback"] == "similar_to_recent" and body["items"]
    archived = archive_events(config.redis, str(tmp_path / "data"), "cluster_loop")
    assert archived["rows"] == 3 and redis_client.writer(config.redis).xlen(rk.EVENTS) == 0
