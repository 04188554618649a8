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


@pytest.fixture(scope="module")
def local_redis(tmp_path_factory):
    folder, port = tmp_path_factory.mktemp("local-redis") / "redis", free_port()
    make = ["make", "-s", "-C", str(REPO), f"REDIS_DIR={folder}", f"REDIS_PORT={port}"]
    started = subprocess.run([*make, "redis-up"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    yield folder, port
    subprocess.run([*make, "redis-down"], capture_output=True, timeout=30)


def test_secrets_are_private_and_never_on_a_command_line(local_redis):
    folder, _ = local_redis
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    secrets = {name: (folder / name).read_text().strip() for name in ("password", "service_password",
                                                                       "events_token")}
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


def test_memory_is_bounded_and_nothing_is_evicted(local_redis):
    folder, port = local_redis
    admin = redis.Redis(port=port, password=(folder / "password").read_text().strip())
    assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert int(admin.config_get("maxmemory")["maxmemory"]) == 2**30
