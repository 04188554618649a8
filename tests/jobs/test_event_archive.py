"""The event archive when things fail or overlap, each fault for real against a real redis-server: two archivers
at the worst moment, an archiver frozen (SIGSTOP) past its lease, a torn commit record and an orphan partial
file, and a stream whose ids went back below the archive's high-water mark."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow.parquet as pq
import pytest

from jobs.lib.loop import event_archive
from jobs.lib.loop.event_archive import archive_events, archive_folder
from jobs.lib.runtime.errors import JobError, TransientJobError
from schemas import redis_keys as rk
from schemas.archive import TornRecord, committed_batches
from schemas.events import to_stream_fields
from tests.support import REPO


@pytest.fixture()
def stream(redis_server, tmp_path):
    client = redis_server.client()
    client.flushdb()
    return redis_server, client, str(tmp_path / "data")


def post(client, count: int, first_user: int = 1) -> list[str]:
    return [client.xadd(rk.EVENTS, to_stream_fields({"user_id": first_user + i, "movie_id": 50, "type": "click",
                                                     "ts": 1_700_000_000})).decode() for i in range(count)]


def archived_ids(data_root: str) -> list[str]:
    return [i for batch in committed_batches(archive_folder(data_root)) if batch["rows"]
            for i in pq.read_table(batch["file"]).column("stream_id").to_pylist()]


def settings(server, **changes):
    from conf.settings import RedisSettings
    return RedisSettings(url=server.url, **changes)


def test_two_archivers_at_the_worst_moment_archive_each_event_once(stream, monkeypatch):
    server, client, data_root = stream
    posted = post(client, 50)
    read_not_committed, go_on = threading.Event(), threading.Event()
    write = event_archive.write_parquet_batches

    def held_after_reading(*args):  # the first archiver has read the stream and not yet committed
        rows = write(*args)
        if threading.current_thread().name == "first":
            read_not_committed.set()
            go_on.wait(30)
        return rows
    monkeypatch.setattr(event_archive, "write_parquet_batches", held_after_reading)
    results = {}

    def archiver(run_id, wait_s):
        try:
            results[run_id] = archive_events(settings(server), data_root, run_id, lease_wait_s=wait_s)
        except TransientJobError as exc:
            results[run_id] = exc
    first = threading.Thread(target=archiver, args=("first", 30), name="first")
    first.start()
    assert read_not_committed.wait(30)
    archiver("impatient", 0)  # cannot wait: refused, naming the holder
    assert isinstance(results["impatient"], TransientJobError)
    assert str(results["impatient"]).startswith("archive:archive is held by first@")
    second = threading.Thread(target=archiver, args=("second", 30), name="second")
    second.start()  # waits for the first
    time.sleep(0.5)
    post(client, 5, first_user=1000)
    go_on.set()
    first.join(30)
    second.join(30)
    assert results["first"]["batch"]["rows"] == 50 and results["second"]["batch"]["rows"] == 5
    ids = archived_ids(data_root)
    assert len(ids) == len(set(ids)) == 55 and set(posted) <= set(ids)
    assert client.xlen(rk.EVENTS) == 0


FROZEN = textwrap.dedent("""
    import sys, time
    from conf.settings import RedisSettings
    from jobs.lib.loop import event_archive
    write = event_archive.write_parquet_batches
    def slowly(*args):  # time for the test to freeze this process between reading and committing
        rows = write(*args)
        print("read", flush=True)
        time.sleep(2)
        return rows
    event_archive.write_parquet_batches = slowly
    event_archive.archive_events(RedisSettings(url=sys.argv[1]), sys.argv[2], "frozen", lease_ttl_s=1)
""")


def test_an_archiver_frozen_past_its_lease_commits_nothing(stream):
    """Before the lease, a frozen archiver that woke up committed the range a newer one had archived too, and
    every later run failed the unique stream id expectation."""
    server, client, data_root = stream
    posted = post(client, 30)
    frozen = subprocess.Popen([sys.executable, "-c", FROZEN, server.url, data_root], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert frozen.stdout.readline().strip() == "read"
        os.kill(frozen.pid, signal.SIGSTOP)  # its lease renewals stop with it
        taken = archive_events(settings(server), data_root, "awake", lease_wait_s=10)  # after the lease expires
        assert taken["batch"]["rows"] == 30
        os.kill(frozen.pid, signal.SIGCONT)
        _, stderr = frozen.communicate(timeout=30)
    finally:
        frozen.kill()
    assert frozen.returncode != 0 and "LeaseLost" in stderr and "frozen@" in stderr and "expired" in stderr
    assert [b["run_id"] for b in committed_batches(archive_folder(data_root))] == ["awake"]
    ids = archived_ids(data_root)
    assert sorted(ids) == sorted(posted)


def test_a_torn_commit_record_and_an_orphan_partial_file_are_handled_with_a_warning(stream, caplog):
    """Before: a torn record made every later ingest raise a JSON traceback."""
    server, client, data_root = stream
    first = post(client, 10)
    archive_events(settings(server), data_root, "run1")
    crashed = post(client, 7, first_user=100)  # a run crashed writing its record in place: nothing trimmed
    folder = archive_folder(data_root)
    with open(f"{folder}/crashed.json", "w") as torn:
        torn.write('{"file": "/x/crashed.parquet", "first_id": "17')
    with open(f"{folder}/crashed.parquet.partial", "wb") as orphan:
        orphan.write(b"PAR1 half a file")
    with pytest.raises(TornRecord, match="crashed.json is torn"):
        committed_batches(folder)  # what a reader sees before the next archive sets it aside
    archived = archive_events(settings(server), data_root, "run2")
    assert archived["batch"]["rows"] == 7
    assert sorted(archived_ids(data_root)) == sorted(first + crashed)
    assert os.path.exists(f"{folder}/crashed.json.torn") and not os.path.exists(f"{folder}/crashed.parquet.partial")
    assert "is torn" in caplog.text and "read again from the stream" in caplog.text


def test_ids_below_the_high_water_mark_that_the_archive_lacks_stop_the_run(stream):
    """A Redis restored from an older copy issues ids the archive has passed: before, they were skipped, then
    trimmed unread."""
    server, client, data_root = stream
    post(client, 5)
    high_water = archive_events(settings(server), data_root, "run1")["batch"]["last_id"]
    # what is left after a restore: the stream recreated, its new entries numbered below the mark
    client.delete(rk.EVENTS)
    ms = int(high_water.split("-")[0])
    restored = [client.xadd(rk.EVENTS, to_stream_fields({"user_id": 7, "movie_id": 50, "type": "click"}),
                            id=f"{ms - 1000 + i}-0").decode() for i in range(3)]
    with pytest.raises(JobError, match=f"3 entries of {rk.EVENTS} from {restored[0]} to {restored[-1]} are at or "
                                       f"below the archive's high-water mark {high_water}"):
        archive_events(settings(server), data_root, "run2")
    assert client.xlen(rk.EVENTS) == 3  # nothing trimmed


def test_entries_below_the_mark_that_the_archive_holds_are_trimmed_without_a_second_copy(stream, monkeypatch):
    """A crash between a commit and its trim leaves archived entries in the stream: the next run trims them."""
    server, client, data_root = stream
    posted = post(client, 4)
    monkeypatch.setattr(event_archive, "_trim_through", lambda *args: None)  # the crash: no trim after the commit
    archive_events(settings(server), data_root, "run1")
    monkeypatch.undo()
    assert client.xlen(rk.EVENTS) == 4
    later = post(client, 2, first_user=50)
    assert archive_events(settings(server), data_root, "run2")["batch"]["rows"] == 2
    assert sorted(archived_ids(data_root)) == sorted(posted + later) and client.xlen(rk.EVENTS) == 0


def test_entries_trimmed_by_the_services_own_xadd_stop_the_next_run_naming_how_many(stream):
    """Redis's ACL cannot refuse XADD's own MAXLEN: with the lookup service's credentials, one XADD took 1,000
    unarchived events to 0. The archive counts them from the stream's entries-added and stops the run."""
    import shlex

    import redis

    from conf import redis_client
    server, client, data_root = stream
    client.execute_command("ACL", "SETUSER", "reco-service", "on", ">service-secret",
                           *shlex.split(redis_client.user_rules("service")))
    try:
        post(client, 3)
        assert "lost" not in archive_events(settings(server), data_root, "run1")["batch"]
        post(client, 1000, first_user=100)
        as_service = redis.Redis(port=server.port, username="reco-service", password="service-secret")
        as_service.xadd(rk.EVENTS, to_stream_fields({"user_id": 9, "movie_id": 50, "type": "click"}), maxlen=0,
                        approximate=False)
        assert client.xlen(rk.EVENTS) == 0
        survivor = post(client, 2, first_user=5000)
        with pytest.raises(event_archive.EventsLost, match=f"1001 entries of {re.escape(rk.EVENTS)} were deleted "
                                                           "before they were archived") as stopped:
            archive_events(settings(server), data_root, "run2")
        assert stopped.value.summary["batch"]["lost"] == 1001 and stopped.value.summary["batch"]["rows"] == 2
        assert "rerun this run id to go on" in str(stopped.value)
        assert sorted(archived_ids(data_root))[-2:] == sorted(survivor) and client.xlen(rk.EVENTS) == 0
        # Someone looked and reran it: it goes on, the loss stays in its record; the next run starts afresh.
        assert archive_events(settings(server), data_root, "run2")["batch"]["lost"] == 1001
        post(client, 4, first_user=6000)
        assert "lost" not in archive_events(settings(server), data_root, "run3")["batch"]
    finally:
        client.execute_command("ACL", "DELUSER", "reco-service")


def test_entries_deleted_among_others_and_a_replaced_stream_are_told_apart(stream):
    server, client, data_root = stream
    post(client, 5)
    archive_events(settings(server), data_root, "run1")
    kept = post(client, 10, first_user=100)
    client.xdel(rk.EVENTS, *kept[2:5])  # three deleted in the middle of what waits
    with pytest.raises(event_archive.EventsLost, match="3 entries") as stopped:
        archive_events(settings(server), data_root, "run2")
    assert stopped.value.summary["batch"]["rows"] == 7
    # FLUSHALL (or a restart without persistence): the stream and its count start again from nothing
    post(client, 4, first_user=200)
    client.delete(rk.EVENTS)
    post(client, 2, first_user=300)
    with pytest.raises(event_archive.EventsLost, match="was deleted or replaced since the last archive"):
        archive_events(settings(server), data_root, "run3")
    assert committed_batches(archive_folder(data_root))[-1]["stream_replaced"] is True
