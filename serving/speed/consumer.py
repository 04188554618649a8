"""The speed layer's consumer: it follows the live pointer and a running experiment, folds each person into the
version they are served (their arm's during an experiment), and writes their fresh list.

- For each followed version it loads the version's fold-in bundle, then rebuilds everyone's events since the
  version (entries after the meta's `events_high_water`): first from the event archive, where a run that has not
  gone live yet may already have moved them (ingest trims what it archives), then from the stream. A restart or a
  version switch starts from a complete state.
- New events arrive through a consumer group (`speed`): read with XREADGROUP, acknowledged after their lists are
  written; entries a killed process read but did not acknowledge are read again on restart, and those another
  consumer of the group left pending (a renamed or retired process) are claimed (XAUTOCLAIM). Entries are folded
  in stream order and each only once: one already folded in (at or below the last one) is acknowledged and
  skipped.
- What it holds is bounded (docs/security-and-reliability.md): per person what their events amount to
  (schemas/people.py Person), for at most `speed.max_people` people; beyond that the least recently active person
  is let go (their fresh list deleted: their answers fall back to the version's list with their exclusions) and
  their later events are not folded in until the next version. The bundle's arrays are memory-mapped: it holds
  the pages of the people it folds in.
- Ordinary faults do not stop it: an entry that is not a valid event is set aside (acknowledged, counted in
  `reco_speed_events_set_aside_total`, logged), never retried; a person whose fold-in fails is skipped and
  counted; Redis refusing writes (out of memory) or unreachable is retried each second without acknowledging;
  a group that vanished (the stream deleted) is created again and everyone rebuilt.
- Several speed layers share the people by id: `--shard k/n` folds in the people with user_id % n == k - 1, in
  its own consumer group (`speed-k-of-n`: each reads the whole stream and acknowledges every entry); one alone is
  `--shard 1/1`, group `speed`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections import OrderedDict
from typing import cast

import redis
from prometheus_client import start_http_server

from conf import redis_client
from conf.settings import Config, load_config
from schemas import archive
from schemas import redis_keys as rk
from schemas.events import MalformedEvent, checked, event_of, stream_id_key
from schemas.experiments import arm_of
from schemas.people import Person
from serving.speed.metrics import (
    DROPPED,
    ERRORS,
    EVENTS_READ,
    FOLD_INS,
    FRESHNESS,
    LAG,
    PEOPLE,
    SET_ASIDE,
    VERSION,
)
from serving.speed.model import NoBundle, VersionModel

log = logging.getLogger("reco.speed")


class SpeedLayer:
    def __init__(self, config: Config, consumer: str = "speed-1", shard: tuple[int, int] = (1, 1)):
        self.config, self.consumer, self.shard = config, consumer, shard
        self.group = rk.speed_group(*shard)
        self.client = redis_client.writer(config.redis)
        self.models: dict[str, VersionModel | None] = {}  # the live version, an experiment's arms (None: no bundle)
        self.state: tuple[str, dict | None] | None = None  # (live version, running experiment)
        self.people: OrderedDict[int, Person] = OrderedDict()  # least recently active first
        self.let_go: set[int] = set()  # people dropped at max_people: not folded in until the next version
        self.folded = (0, 0)  # the last stream id folded in: entries at or below it are not folded again
        self.ttl_s = config.events.recent_ttl_days * 86_400
        self.next_claim = 0.0
        self.stopping = False

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(rk.EVENTS, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def model_for(self, user: int) -> VersionModel | None:
        """The model of the version this person is served: their experiment arm's, else the live one (None when
        that version has no fold-in bundle)."""
        assert self.state is not None  # follow_live ran
        live, experiment = self.state
        return self.models[experiment[arm_of(experiment, user)] if experiment else live]

    def follow_live(self) -> bool:
        """Load the live version (and a running experiment's treatment) when they changed; True when they did
        (every person is folded in again)."""
        raw_live, raw_experiment = redis_client.mget(self.client, [rk.LIVE, rk.EXPERIMENT])
        live, experiment = _text(raw_live or b""), rk.decode(raw_experiment)
        if not live or self.state == (live, experiment):
            return False
        wanted = {live} | ({experiment["control"], experiment["treatment"]} if experiment else set())
        self.models = {v: self.models[v] if v in self.models else self._load(v) for v in wanted}
        self.state = (live, experiment)
        VERSION.clear()
        for version in wanted:
            VERSION.labels(version=version).set(1)
        self.rebuild()
        return True

    def _load(self, version: str) -> VersionModel | None:
        try:
            return VersionModel(self.client, version)
        except NoBundle as exc:
            log.warning("%s", exc)
            return None

    def rebuild(self) -> None:
        """Everyone's events since the oldest of the versions followed, from the archive and then the stream;
        each model folds in only the events after its own high-water mark."""
        self.people.clear()
        self.let_go.clear()
        self.folded = (0, 0)
        marks = [m.high_water for m in self.models.values() if m is not None]
        if not marks:
            return
        oldest = min(marks)
        self.fold(
            (row["stream_id"], row)
            for row in archive.rows_after(self.config.data_root, oldest, ["user_id", "movie_id", "type", "rating"])
        )
        start = f"({oldest[0]}-{oldest[1]}"
        while True:
            page = self.client.xrange(rk.EVENTS, min=start, count=self.config.events.archive_page)
            if not page:
                break
            self.fold((_text(sid), fields) for sid, fields in page)
            start = f"({_text(page[-1][0])}"
        self.write(list(self.people), time.time())

    def fold(self, entries) -> set[int]:
        """Folds (stream id, stream fields or archive row) pairs into the people they concern, in order, each entry
        once; returns those people. Entries that are not valid events are set aside."""
        touched = set()
        for sid, fields in entries:
            at = stream_id_key(sid)
            if at <= self.folded:
                continue
            self.folded = at
            try:
                event = event_of(fields) if "user_id" not in fields else checked(fields)
            except MalformedEvent as exc:
                SET_ASIDE.labels(reason="invalid").inc()
                log.warning("entry %s of %s set aside: %s", sid, rk.EVENTS, exc)
                continue
            user = event["user_id"]
            if user % self.shard[1] != self.shard[0] - 1 or user in self.let_go:
                continue
            model = self.model_for(user)
            if model is None or at <= model.high_water:  # no bundle, or the person's version learnt from it
                continue
            EVENTS_READ.inc()
            person = self.people.get(user)
            if person is None:
                person = self.people[user] = Person()
                if len(self.people) > self.config.speed.max_people:
                    self.drop(self.people.popitem(last=False)[0])
            else:
                self.people.move_to_end(user)
            person.apply(event)
            touched.add(user)
        touched &= self.people.keys()
        PEOPLE.set(len(self.people))
        return touched

    def drop(self, user: int) -> None:
        """Let the least recently active person go: no fresh list (answers from the version's, with their
        exclusions), and no fold-in until the next version (their earlier events are no longer held)."""
        self.let_go.add(user)
        DROPPED.inc()
        try:
            self.client.delete(rk.fresh(user))
        except redis.RedisError as exc:  # it expires, and names a version: it cannot outlive that version
            log.warning("fresh list of user %s not deleted: %s", user, exc)

    def write(self, users, oldest_event_s: float) -> None:
        """Each person's fresh list, `speed.write_batch` people per pipeline. A person whose fold-in fails is
        skipped (counted, logged); a Redis error propagates, so nothing is acknowledged."""
        users = list(users)
        for start in range(0, len(users), self.config.speed.write_batch):
            with self.client.pipeline(transaction=False) as pipe:
                for user in users[start : start + self.config.speed.write_batch]:
                    person = self.people.get(user)
                    if person is None:
                        continue
                    model = self.model_for(user)
                    if model is None:  # its version has no bundle: nobody of it is held
                        continue
                    try:
                        fresh = model.fresh_list(user, person)
                    except Exception:  # noqa: BLE001 - one person's numbers must not stop everyone's
                        ERRORS.labels(kind="fold_in").inc()
                        log.exception("fold-in of user %s failed; skipped", user)
                        continue
                    if fresh is not None:
                        pipe.set(rk.fresh(user), fresh, ex=self.ttl_s)
                        FOLD_INS.inc()
                pipe.execute()
        FRESHNESS.observe(max(0.0, time.time() - oldest_event_s))

    def step(self, block_ms: int = 1000) -> int:
        """Read what is new (first what this consumer read and did not acknowledge before, and what others of
        the group left pending), fold it in, write, acknowledge. Returns the entries handled."""
        self.follow_live()
        if self.state is None:
            time.sleep(block_ms / 1000)
            return 0
        handled = 0
        for start in ("0", "claim", ">"):
            entries: list
            if start == "claim":
                entries = self.claim()
            else:
                reply = self.client.xreadgroup(
                    self.group, self.consumer, {rk.EVENTS: start}, count=500, block=None if start == "0" else block_ms
                )
                entries = cast(list, reply)[0][1] if reply else []
            if not entries:
                continue
            present = [(_text(sid), fields) for sid, fields in entries if fields]  # trimmed: nil fields
            touched = self.fold(present)
            if touched:
                oldest = min(stream_id_key(sid)[0] for sid, _ in present) / 1000
                self.write(touched, oldest)
            self.client.xack(rk.EVENTS, self.group, *[sid for sid, _ in entries])
            handled += len(entries)
        self.report_lag()
        return handled

    def claim(self) -> list:
        """Entries another consumer of the group left pending for `speed.claim_idle_s` (it was renamed, retired or
        died), now this one's, checked as often. Their effect is already in (rebuilt from the stream)."""
        if time.monotonic() < self.next_claim:
            return []
        idle_s = self.config.speed.claim_idle_s
        self.next_claim = time.monotonic() + idle_s
        claimed, cursor = [], "0-0"
        while True:
            reply = self.client.xautoclaim(rk.EVENTS, self.group, self.consumer, int(idle_s * 1000), cursor, count=500)
            cursor, entries = reply[0], reply[1]
            claimed += entries
            if cursor in (b"0-0", "0-0"):
                return claimed

    def report_lag(self) -> None:
        for group in self.client.xinfo_groups(rk.EVENTS):
            if group["name"] in (self.group, self.group.encode()) and group.get("lag") is not None:
                LAG.set(group["lag"])

    def run(self) -> None:
        while not self.stopping:
            try:
                if self.state is None:
                    self.ensure_group()
                self.step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                ERRORS.labels(kind="redis").inc()
                log.warning("Redis unreachable (%s); retrying", exc)
                time.sleep(1)
            except redis.ResponseError as exc:
                ERRORS.labels(kind="redis").inc()
                if "NOGROUP" in str(exc):  # the stream or the group was deleted: start again from what is there
                    log.warning("the consumer group is gone (%s); creating it and rebuilding", exc)
                    self.state = None
                else:  # e.g. out of memory: nothing was acknowledged, so it is all read again
                    log.error("Redis refused (%s); retrying in 1 s", exc)
                time.sleep(1)
            except Exception:  # noqa: BLE001 - the process outlives anything one step meets
                ERRORS.labels(kind="unexpected").inc()
                log.exception("speed layer step failed; retrying in 1 s")
                time.sleep(1)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def shard_of(text: str) -> tuple[int, int]:
    """ "k/n" -> (k, n), 1 <= k <= n."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes k/n (e.g. 1/2), got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard k/n needs 1 <= k <= n, got {text!r}")
    return k, n


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m serving.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config file (default: $RECO_CONFIG or conf/local.yaml)")
    parser.add_argument("--consumer", default="speed-1", help="this process's name in the consumer group")
    parser.add_argument(
        "--shard",
        default="1/1",
        type=shard_of,
        help="k/n: fold in the people with user_id %% n == k - 1 (n speed layers share them)",
    )
    parser.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics here (0: off)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics endpoint")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s speed_layer %(levelname)s %(message)s")
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_host)
    layer = SpeedLayer(load_config(args.config), args.consumer, args.shard)
    signal.signal(signal.SIGTERM, lambda *_: setattr(layer, "stopping", True))
    layer.run()
