"""Publication when things fail or overlap, each fault injected for real: the flip's reply lost on the wire, the
publisher SIGKILLed mid-write, two publishers at once, a stalled holder whose lease was taken over, a backfill
of older data, and a Redis whose maxmemory is exactly the documented size."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from jobs import publish
from jobs.lib.publication import versions as publication
from jobs.lib.runtime.errors import TransientJobError
from jobs.lib.runtime.leases import Lease, LeaseLost
from jobs.lib.runtime.run_layout import run_paths
from schemas import redis_keys as rk
from schemas.storage import delete_file, exists, write_json
from tests.jobs.test_publish import copy_run
from tests.support import REPO, RedisServer, ReplyDroppingProxy, wait_until


@pytest.fixture()
def redis_client(redis_server):
    client = redis_server.client()
    client.flushdb()
    return client


def with_redis(config, **changes):
    return config.model_copy(update={"redis": config.redis.model_copy(update=changes)})


def version_ids_in_redis(client) -> set[str]:
    return {key.decode().split(":")[2] for key in client.scan_iter(match="reco:v:*", count=10_000)}


def test_a_lost_reply_to_the_flip_keeps_the_version_the_pointer_names(pipeline_run, spark, redis_server,
                                                                       redis_client):
    """Before: the publisher took the lost reply for a failure and deleted the version the pointer named."""
    config, run_id, _, _ = pipeline_run
    first = publish.run(config, run_id, spark=spark)["version"]
    proxy = ReplyDroppingProxy(redis_server.port)
    try:
        sha = redis_client.script_load(publication._FLIP)  # so that the flip is one EVALSHA carrying this sha
        proxy.drop_reply_to(sha.encode() if isinstance(sha, str) else sha)
        report = publish.run(with_redis(config, url=proxy.url), run_id, spark=spark)
    finally:
        proxy.close()
    assert proxy.dropped == 1
    second = report["version"]
    assert redis_client.get(rk.LIVE).decode() == second  # Redis applied the flip
    assert publication.count_version_keys(redis_client, second) == report["keys"]  # nothing of it deleted
    assert {v.decode() for v in redis_client.zrange(rk.VERSIONS, 0, -1)} == {first, second}
    assert redis_client.zcard(rk.PENDING) == 0


WRITER = textwrap.dedent("""
    import sys, time
    from conf.settings import load_config
    from conf import redis_client
    from jobs.lib.publication import versions
    from jobs.lib.runtime.leases import Lease
    config = load_config(overrides={"redis.url": sys.argv[1]})
    slow = versions._replies
    def slowly(connection, in_flight):  # slows the write down so that the kill lands in the middle of it
        time.sleep(0.3)
        return slow(connection, in_flight)
    versions._replies, versions.PIPELINE_KEYS = slowly, 500
    client = redis_client.writer(config.redis)
    with Lease(client, "publish", "doomed-writer", ttl_s=2) as lease:
        versions.publish_version(client, config.redis, "killed", sys.argv[2], int(sys.argv[3]), b"{}", lease)
""")


def test_a_publisher_killed_mid_write_leaves_nothing_once_the_next_one_runs(pipeline_run, spark, redis_server,
                                                                          redis_client, tmp_path):
    """Before: the killed version's keys were in no registry, so no prune ever found them."""
    config, run_id, paths, _ = pipeline_run
    config = with_redis(config, lease_wait_s=10)
    empty = redis_client.info("memory")["used_memory"]
    live = publish.run(config, run_id, spark=spark)
    before = redis_client.info("memory")["used_memory"]
    values = paths.publish_values  # the run's values serve any version: written as "killed"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, redis_server.url, values, str(live["keys"] - 1)],
                              cwd=REPO)
    try:
        wait_until(lambda: publication.count_version_keys(redis_client, "killed") > 1000, timeout=60,
                   what="the doomed publisher's first keys")
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(10)
    finally:
        writer.kill()
    written = publication.count_version_keys(redis_client, "killed")
    assert 1000 < written < live["keys"]  # killed in the middle of the write
    assert redis_client.zscore(rk.PENDING, "killed") is not None  # findable

    pruned = publish.run(config, None, prune_only=True)["pruned"]  # waits out the dead holder's 2 s lease
    assert "killed" in pruned
    assert version_ids_in_redis(redis_client) == {live["version"]}
    assert redis_client.zcard(rk.PENDING) == 0
    after = redis_client.info("memory")["used_memory"]
    assert abs(after - before) < 0.05 * (before - empty)  # back where it was (within 5% of a version's size)


def test_two_publishers_at_once_publish_one_after_the_other_never_interleaved(pipeline_run, spark, redis_client):
    config, run_id, paths, _ = pipeline_run
    results, errors = [], []
    # The first builds the run's values anew in Spark under the lease (seconds): the second comes while it is held.
    if exists(paths.publish_values_built):
        delete_file(paths.publish_values_built)

    def publisher(wait_s):
        try:
            results.append(publish.run(with_redis(config, lease_wait_s=wait_s), run_id, spark=spark))
        except TransientJobError as exc:
            errors.append(str(exc))
    first = threading.Thread(target=publisher, args=(60,))
    first.start()
    wait_until(lambda: redis_client.exists(rk.lease("publish")), timeout=60, interval=0.01, what="the first lease")
    refused = threading.Thread(target=publisher, args=(0,))  # cannot wait: refused, naming the holder
    refused.start()
    refused.join(60)
    first.join(120)
    assert len(results) == 1 and len(errors) == 1
    assert errors[0].startswith("publish is held by ") and run_id in errors[0]
    assert "another run is doing it" in errors[0]
    assert redis_client.get(rk.LIVE).decode() == results[0]["version"]
    # with time to wait, the second goes after the first
    both = [threading.Thread(target=publisher, args=(60,)) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(180)
    assert len(results) == 3 and len(errors) == 1
    assert redis_client.get(rk.LIVE).decode() in {r["version"] for r in results[1:]}
    assert {v.decode() for v in redis_client.zrange(rk.VERSIONS, 0, -1)} == {r["version"] for r in results}


STALLED = textwrap.dedent("""
    import sys
    from conf.settings import load_config
    from conf import redis_client
    from jobs.lib.publication import versions
    from jobs.lib.runtime.leases import Lease
    config = load_config(overrides={"redis.url": sys.argv[1]})
    client = redis_client.writer(config.redis)
    with Lease(client, "publish", "stalled-publisher", ttl_s=1) as lease:
        versions.publish_version(client, config.redis, "stalled", sys.argv[2], int(sys.argv[3]), b"{}", lease)
        print("flipped", flush=True)
        sys.stdin.readline()  # where it is frozen (SIGSTOP), between its flip and its final prune
        print(versions.prune(client, 1, lease), flush=True)
""")


def test_a_publisher_that_lost_its_lease_prunes_nothing(pipeline_run, spark, redis_server, redis_client,
                                                        tmp_path, monkeypatch):
    """Before: the final prune ran without a lease check and removed every pending version, so a publisher
    resuming after another took over deleted the other's version in the middle of its write."""
    config, run_id, paths, _ = pipeline_run
    live = publish.run(config, run_id, spark=spark)
    stalled = subprocess.Popen([sys.executable, "-c", STALLED, redis_server.url,
                                paths.publish_values,
                                str(live["keys"] - 1)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    taken_over, go_on = threading.Event(), threading.Event()
    count = publication.count_version_keys

    def counted_after_the_stalled_one_woke(client, version):  # the next publisher, all its keys written
        taken_over.set()
        go_on.wait(30)
        return count(client, version)
    try:
        assert stalled.stdout.readline().strip() == "flipped"
        os.kill(stalled.pid, signal.SIGSTOP)  # its lease renewals stop with it; the lease runs out in 1 s
        monkeypatch.setattr(publication, "count_version_keys", counted_after_the_stalled_one_woke)
        values = paths.publish_values

        def next_publisher():
            with Lease(redis_client, "publish", "next-publisher", wait_s=10) as lease:
                publication.publish_version(redis_client, config.redis, "next", values, live["keys"] - 1, b"{}", lease)
        writer = threading.Thread(target=next_publisher)
        writer.start()
        assert taken_over.wait(30)
        assert redis_client.zscore(rk.PENDING, "next") is not None  # written, not yet flipped
        os.kill(stalled.pid, signal.SIGCONT)
        _, stderr = stalled.communicate("go\n", timeout=30)
        go_on.set()
        writer.join(30)
    finally:
        go_on.set()
        stalled.kill()
    assert stalled.returncode != 0 and "LeaseLost" in stderr
    assert redis_client.get(rk.LIVE).decode() == "next"
    assert count(redis_client, "next") == live["keys"]  # every key of it, the meta included
    assert redis_client.zcard(rk.PENDING) == 0 and not redis_client.hlen(rk.PENDING_OWNERS)


def test_a_stale_holder_is_fenced_and_a_dead_holders_lease_is_taken_over(pipeline_run, spark, redis_client,
                                                                         tmp_path):
    config, run_id, paths, _ = pipeline_run
    live = publish.run(config, run_id, spark=spark)
    values = paths.publish_values
    stale = Lease(redis_client, "publish", "stalled-publisher", ttl_s=0.5)
    stale.acquire()  # and never renewed: the holder froze
    time.sleep(0.6)
    with Lease(redis_client, "publish", "next-publisher", wait_s=5) as fresh:  # taken over
        assert fresh.token > stale.token
        with pytest.raises(LeaseLost, match=r"stalled-publisher \(token \d+\) expired and is held by next-publisher"):
            stale.check()
        # Had its lease run out between its last check and its flip, the flip itself is refused by the token
        # inside Redis, and the stale version removed.
        stale.check = lambda: None
        with pytest.raises(Exception, match="FENCED"):
            publication.publish_version(redis_client, config.redis, "stale", values, live["keys"] - 1, b"{}", stale)
    assert redis_client.get(rk.LIVE).decode() == live["version"]
    assert version_ids_in_redis(redis_client) == {live["version"]}


def test_a_backfill_of_older_data_succeeds_without_replacing_live_unless_forced(pipeline_run, spark, redis_client):
    config, run_id, _, _ = pipeline_run
    newer = publish.run(config, run_id, spark=spark, data_as_of="2026-11-02T00:00:00+00:00")["version"]
    held = publish.run(config, run_id, spark=spark, data_as_of="2026-11-01T00:00:00+00:00")
    assert re.match(r"live version \S+ was built from newer data \(its data is as of 2026-11-02.*as of 2026-11-01",
                    held["held"])
    assert redis_client.get(rk.LIVE).decode() == newer and redis_client.zcard(rk.VERSIONS) == 1  # nothing written
    forced = publish.run(config, run_id, spark=spark, data_as_of="2026-11-01T00:00:00+00:00", force=True)
    assert redis_client.get(rk.LIVE).decode() == forced["version"]
    later = publish.run(config, run_id, spark=spark, data_as_of="2026-11-03T00:00:00+00:00")  # newer: goes live
    assert redis_client.get(rk.LIVE).decode() == later["version"]


def test_publications_fit_a_redis_sized_as_documented(pipeline_run, spark, tmp_path):
    """docs/operations.md: maxmemory = retention x one version (plus Redis's own baseline). Before, prune ran
    after the write, so the third publication needed retention + 1 versions and Redis refused it."""
    config, run_id, _, _ = pipeline_run
    server = RedisServer(tmp_path).start()
    try:
        client = server.client()
        config = with_redis(config, url=server.url, retention=2)
        baseline = client.info("memory")["used_memory"]
        publish.run(config, run_id, spark=spark)
        version_size = client.info("memory")["used_memory"] - baseline
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", baseline + 2 * version_size + version_size // 10)  # a 10% margin
        for _ in range(3):
            publish.run(config, run_id, spark=spark)
        assert client.zcard(rk.VERSIONS) == 2
    finally:
        server.stop()


def test_a_run_trained_without_the_event_archive_publishes(pipeline_run, spark, redis_client):
    """events.archive: false leaves no high-water mark; only the logical dates are compared."""
    config, run_id, paths, _ = pipeline_run
    run = copy_run(config, run_id, "it_no_archive")
    write_json(run_paths(config, run).events, {"batch": None, "rerun": False, "files": [], "rows": 0,
                                                "disabled": True})
    report = publish.run(config, run, spark=spark)
    assert redis_client.get(rk.LIVE).decode() == report["version"]
    assert rk.decode(redis_client.get(rk.key(report["version"], "meta")))["events_high_water"] is None


def test_ending_an_experiment_never_moves_live_back_past_a_version_published_meanwhile(pipeline_run, spark,
                                                                                       redis_client):
    """release: direct publishes the nightly run live while an A/B runs: before, --abort put control back live
    and --promote the treatment, both older than it."""
    from jobs.lib.loop import experiment_control
    config, run_id, _, _ = pipeline_run
    control = publish.run(config, run_id, spark=spark)["version"]
    treatment = publish.run(config, run_id, spark=spark, candidate=True, share=0.5, salt="moved-on")["version"]
    nightly = publish.run(config, run_id, spark=spark)["version"]  # direct, during the experiment
    assert redis_client.get(rk.LIVE).decode() == nightly
    ended = experiment_control.end(redis_client, "aborted", reason="test")
    assert redis_client.get(rk.LIVE).decode() == nightly == ended["live"] and "stays live" in ended["note"]
    experiment_control.start(redis_client, treatment, 0.5, salt="moved-on-again")  # control: the nightly one
    later = publish.run(config, run_id, spark=spark)["version"]
    assert experiment_control.end(redis_client, "promoted", reason="test")["live"] == later
    assert redis_client.get(rk.LIVE).decode() == later
    # Unmoved, the outcome still decides: the treatment of an experiment on the live version goes live.
    experiment_control.start(redis_client, nightly, 0.5)
    assert experiment_control.end(redis_client, "promoted")["live"] == nightly != control
    assert redis_client.get(rk.LIVE).decode() == nightly
