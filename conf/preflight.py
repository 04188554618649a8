"""The settings a newcomer can get wrong, checked before anything slow starts: `make demo`, `make pipeline` and
`make airflow` run this first, before setup installs anything, so a bad RECO_CONFIG, RECO_MOVIELENS_DIR,
RECO_DATASET or RECO_REDIS_URL ends the command in a second with one line naming the setting and the cause.

Standard library only, plus schemas.movielens (plain Python): it runs on the machine's python3 before the
virtualenv exists. Where the virtualenv's packages are importable, the whole config is validated by the one
loader too, and the Redis URL is tried with a PING (password included); otherwise a TCP connect.
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from schemas.movielens import DATASET_NAMES, AmbiguousFolder, detect_dataset

REDIS_TIMEOUT_S = 2.0


def check_config_file(path: str) -> str | None:
    if not Path(path).is_file():
        return f"RECO_CONFIG {path}: no such file (unset it for conf/local.yaml)"
    return None


def check_movielens(folder: str, dataset: str | None) -> str | None:
    if dataset and dataset not in DATASET_NAMES:
        return f"RECO_DATASET {dataset}: not a MovieLens release this project reads ({', '.join(DATASET_NAMES)})"
    if not folder:
        return None
    path = Path(folder).expanduser()
    if not path.is_dir():
        return f"RECO_MOVIELENS_DIR {folder}: no such folder (unset it to download MovieLens 100K)"
    try:
        detect_dataset(path, dataset or None)
    except AmbiguousFolder as exc:
        return f"RECO_MOVIELENS_DIR {exc}"
    return None


def check_redis_url(url: str) -> str | None:
    """Syntax, then whether anything answers there: a PING with redis-py where it is installed (a wrong password
    shows), a TCP connect otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return f"RECO_REDIS_URL: scheme {parts.scheme or '(none)'}:// is not redis://, rediss:// or unix://"
    if parts.scheme != "unix" and not parts.hostname:
        return "RECO_REDIS_URL: no host (redis://[:password@]host:port/db)"
    try:
        port = parts.port or 6379
    except ValueError:
        return "RECO_REDIS_URL: the port is not a number"
    where = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{port}"
    try:
        import redis
    except ImportError:  # before setup: a TCP connect below
        pass
    else:
        try:
            redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S).ping()
        except redis.AuthenticationError:
            return f"RECO_REDIS_URL: Redis at {where} refused the password"
        except (redis.RedisError, ValueError) as exc:
            return f"RECO_REDIS_URL: no Redis answers at {where} ({exc})"
        return None
    try:
        if parts.scheme == "unix":
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(REDIS_TIMEOUT_S)
                sock.connect(parts.path)
        else:
            socket.create_connection((parts.hostname, port), timeout=REDIS_TIMEOUT_S).close()
    except OSError as exc:
        return f"RECO_REDIS_URL: nothing answers at {where} ({exc.strerror or exc})"
    return None


def check_loader() -> str | None:
    """The whole config through the one loader, where its packages are importable (the virtualenv)."""
    try:
        from conf.settings import ConfigError, load_config
    except ImportError:
        return None
    try:
        load_config()
    except ConfigError as exc:
        return f"config: {exc}"
    return None


def problems(env: dict[str, str]) -> list[str]:
    """Each setting of `env` that cannot work; when none, the loader's verdict (it reads the process's own)."""
    found = []
    if env.get("RECO_CONFIG"):
        found.append(check_config_file(env["RECO_CONFIG"]))
    found.append(check_movielens(env.get("RECO_MOVIELENS_DIR", ""), env.get("RECO_DATASET") or None))
    if env.get("RECO_REDIS_URL"):
        found.append(check_redis_url(env["RECO_REDIS_URL"]))
    if not any(found):
        found.append(check_loader())
    return [problem for problem in found if problem]


def main() -> None:
    found = problems(dict(os.environ))
    if found:
        print(f"{sys.argv[1] if len(sys.argv) > 1 else 'preflight'}: {found[0]}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
