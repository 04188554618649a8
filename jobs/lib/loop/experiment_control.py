"""Running experiments in Redis: start one on a candidate version, end it by promoting the treatment or by
aborting (control stays live). Every change is one MULTI/EXEC on `{ctl}` keys, watched so that two operators
(or an operator and the nightly DAG) cannot both end the same experiment. The record's shape and the arm
assignment: schemas/experiments.py."""
from __future__ import annotations

import logging
import secrets
import time

import redis

from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import utc_now
from schemas import redis_keys as rk
from schemas.experiments import KINDS

log = logging.getLogger("reco.experiments")


def current(client: redis.Redis) -> dict | None:
    return rk.decode(client.get(rk.EXPERIMENT))


def history(client: redis.Redis, count: int = 20) -> list[dict]:
    return [rk.decode(raw) for raw in client.lrange(rk.EXPERIMENT_LOG, 0, count - 1)]


def start(client: redis.Redis, treatment: str, share: float, kind: str = "ab", sample_rate: float = 1.0,
          salt: str | None = None) -> dict:
    """Start an experiment: the live version as control, `treatment` (a registered candidate) for `share` of
    the users. Refused while another experiment runs. `salt` (default: random) fixes the split, e.g. to
    repeat an experiment on the same users."""
    if kind not in KINDS or not 0 < share < 1:
        raise JobError(f"an experiment needs a kind in {KINDS} and 0 < share < 1 (got {kind!r}, {share})")
    with client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(rk.EXPERIMENT, rk.LIVE)
            running = rk.decode(pipe.get(rk.EXPERIMENT))
            if running:
                raise JobError(f"experiment {running['id']} is running; promote or abort it first")
            control = (pipe.get(rk.LIVE) or b"").decode()
            if not control:
                raise JobError("no live version to compare against: publish one first")
            if control == treatment:
                raise JobError(f"version {treatment} is already live")
            if pipe.zscore(rk.VERSIONS, treatment) is None:
                raise JobError(f"version {treatment} is not registered (publish --candidate first)")
            experiment = {"id": f"exp-{treatment}", "kind": kind, "control": control, "treatment": treatment,
                          "share": share, "salt": salt or secrets.token_hex(8), "sample_rate": sample_rate,
                          "started_at": utc_now()}
            pipe.multi()
            pipe.set(rk.EXPERIMENT, rk.encode(experiment))
            pipe.execute()
        except redis.WatchError:
            raise JobError("the live version or the experiment changed while starting; try again") from None
    log.info("experiment %s started: %s (control) vs %s (treatment, %.0f%%)", experiment["id"], control,
             treatment, share * 100)
    return experiment


def end(client: redis.Redis, outcome: str, experiment_id: str | None = None, reason: str = "") -> dict:
    """End the running experiment: outcome "promoted" makes the treatment live, "aborted" keeps control live.
    `experiment_id`, when given, must name the running one (a stale judgement must not end a newer one).
    Live never moves back: when a version was published live while the experiment ran (release: direct), the
    pointer no longer names the control, and that newer version stays live whatever the outcome."""
    assert outcome in ("promoted", "aborted"), outcome
    with client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(rk.EXPERIMENT, rk.LIVE)
            experiment = rk.decode(pipe.get(rk.EXPERIMENT))
            if not experiment:
                raise JobError("no experiment is running")
            if experiment_id and experiment["id"] != experiment_id:
                raise JobError(f"experiment {experiment_id} is not the running one ({experiment['id']})")
            current_live = (pipe.get(rk.LIVE) or b"").decode()
            moved_on = current_live not in ("", experiment["control"])
            live = current_live if moved_on else \
                experiment["treatment"] if outcome == "promoted" else experiment["control"]
            ended = {**experiment, "outcome": outcome, "reason": reason, "ended_at": utc_now(), "live": live}
            if moved_on:
                ended["note"] = f"version {live} went live during the experiment and stays live"
                log.warning("experiment %s %s, but %s", experiment["id"], outcome, ended["note"])
            pipe.multi()
            pipe.set(rk.LIVE, live)
            if outcome == "promoted" and not moved_on:  # now the newest live version: retention counts from it
                pipe.zadd(rk.VERSIONS, {live: time.time()})
            pipe.delete(rk.EXPERIMENT)
            pipe.lpush(rk.EXPERIMENT_LOG, rk.encode(ended))
            pipe.ltrim(rk.EXPERIMENT_LOG, 0, 99)
            pipe.execute()
        except redis.WatchError:
            raise JobError("the experiment or the live version changed while ending it; look again") from None
    log.info("experiment %s %s; live version: %s", experiment["id"], outcome, live)
    return ended


def versions_in_use(client: redis.Redis) -> set[str]:
    """Versions the running experiment serves: retention must keep them."""
    experiment = current(client)
    return {experiment["control"], experiment["treatment"]} if experiment else set()
