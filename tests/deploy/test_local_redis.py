"""`make redis-up`, the Redis of `make demo` and `make serve`, started for real in a folder of the test's own:
secrets readable by their owner alone and on no command line, the service's least-privilege user applied, and
memory bounded without evicting anything."""
import stat
import subprocess
from pathlib import Path

import pytest
import redis

from schemas import redis_keys as rk
from tests.support import REPO, free_port


def make(folder, port, target):
    done = subprocess.run(["make", "-s", "-C", str(REPO), f"REDIS_DIR={folder}", f"REDIS_PORT={port}", target],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def local_redis(tmp_path_factory):
    folder, port = tmp_path_factory.mktemp("local-redis") / "redis", free_port()
    make(folder, port, "redis-up")
    yield folder, port
    make(folder, port, "redis-down")


def test_secrets_are_private_and_never_on_a_command_line(local_redis):
    folder, _ = local_redis
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    secrets = {name: (folder / name).read_text().strip() for name in ("password", "service_password",
                                                                       "speed_password", "events_token")}
    for name in (*secrets, "redis.conf"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert all(len(secret) >= 24 for secret in secrets.values())
    pid = (folder / "redis.pid").read_text().strip()
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert "redis-server" in command_line
    assert not any(secret in command_line for secret in secrets.values())


def test_the_service_user_appends_events_and_cannot_wipe_them(local_redis):
    folder, port = local_redis
    service = redis.Redis(port=port, username="reco-service",
                          password=(folder / "service_password").read_text().strip())
    admin = redis.Redis(port=port, password=(folder / "password").read_text().strip())
    assert service.xadd(rk.EVENTS, {"event": "{}"}) and service.get(rk.LIVE) is None
    for forbidden in (lambda: service.delete(rk.EVENTS), lambda: service.expire(rk.EVENTS, 1),
                      lambda: service.xtrim(rk.EVENTS, maxlen=0), lambda: service.set(rk.LIVE, "x"),
                      lambda: service.flushdb(), lambda: service.config_get("maxmemory")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port).ping()  # no anonymous access
    assert admin.xlen(rk.EVENTS) == 1
    speed = redis.Redis(port=port, username="reco-speed", password=(folder / "speed_password").read_text().strip())
    assert speed.set(rk.fresh(1), "{}") and speed.xrange(rk.EVENTS)  # its fold-in lists; reading the stream
    for forbidden in (lambda: speed.xadd(rk.EVENTS, {"event": "{}"}), lambda: speed.xtrim(rk.EVENTS, maxlen=0),
                      lambda: speed.set(rk.excluded(1), "x"), lambda: speed.set(rk.LIVE, "x")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()


def test_memory_is_bounded_and_nothing_is_evicted(local_redis):
    folder, port = local_redis
    admin = redis.Redis(port=port, password=(folder / "password").read_text().strip())
    assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert int(admin.config_get("maxmemory")["maxmemory"]) == 2**30


def test_a_running_redis_from_before_the_service_user_gets_it(local_redis):
    """A demo Redis started by an older checkout (no service user, no maxmemory) is brought up to date by the
    next `make redis-up`, without a restart and without a password on a command line."""
    folder, port = local_redis
    admin = redis.Redis(port=port, password=(folder / "password").read_text().strip())
    admin.execute_command("ACL", "DELUSER", "reco-service", "reco-speed")
    admin.config_set("maxmemory", 0)
    make(folder, port, "redis-up")
    for user in ("service", "speed"):
        client = redis.Redis(port=port, username=f"reco-{user}",
                             password=(folder / f"{user}_password").read_text().strip())
        assert client.ping()
    assert int(admin.config_get("maxmemory")["maxmemory"]) == 2**30
