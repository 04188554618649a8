"""speed_layer: between two runs, folds the events people send into the live version's model, so that their
recommendations follow what they just did within a second. A long-running process (no Spark), beside the
lookup workers; `python -m jobs.speed_layer` (make demo starts one).

- It follows the live pointer and a running experiment: each person is folded into the version they are served
  (their arm's during an experiment). For each such version it loads what fold-in needs: the run's item factors and
  training preferences (the files the batch run wrote, named by the version's meta) and the settings in the
  meta (`fold_in`), then rebuilds everyone's events since the version from the stream (entries after the meta's
  `events_high_water`), so a restart or a version switch starts from a complete state.
- New events arrive through a consumer group (`speed`): read with XREADGROUP, acknowledged after their lists
  are written; entries a killed process read but did not acknowledge are read again on restart. Events are
  keyed by stream id, so an entry read twice counts once.
- Each person with ratings or clicks since the version gets a fresh list: their vector solved from their
  training preferences plus the new ones (a new person: from the new ones alone), jobs/lib/model/fold_in.py,
  scored against every movie, without what they rated or dismissed; written to `reco:{events}:fresh:<user>`
  with the version it was computed from (the service serves it only with that version) and a TTL.
- Several speed layers share the people by id: `--shard k/n` folds in the users with user_id % n == k - 1, in its
  own consumer group (`speed-k-of-n`: each reads the whole stream, acknowledges every entry, keeps only its
  people's training preferences); one alone is `--shard 1/1`, group `speed`.
- Metrics on --metrics-port: fold-ins, the group's lag, freshness (event accepted -> list written).
"""
from __future__ import annotations

import argparse
import logging
import signal
import time
from collections import defaultdict

import orjson
import redis
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from conf import redis_client
from conf.settings import Config, load_config
from jobs.lib.model.fold_in import ItemFactors, Preferences, because, fold_in, preference_values, top_n
from jobs.lib.model.scoring import factors_of
from jobs.lib.runtime.run_layout import run_paths
from jobs.lib.runtime.storage import exists, join, read_table
from schemas import redis_keys as rk
from schemas.events import FIELD, stream_id_key
from schemas.experiments import arm_of

log = logging.getLogger("reco.speed")

FOLD_INS = Counter("reco_speed_fold_ins_total", "People whose fresh list the speed layer wrote")
EVENTS_READ = Counter("reco_speed_events_total", "Stream entries the speed layer folded in (once each)")
LAG = Gauge("reco_speed_lag_entries", "Stream entries not yet delivered to the speed layer's group")
FRESHNESS = Histogram("reco_speed_freshness_seconds", "From an event's acceptance to its person's fresh list",
                      buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
VERSION = Gauge("reco_speed_version_info", "The version the speed layer folds into", ["version"])
PEOPLE = Gauge("reco_speed_people", "People of this shard with events since the version")


class VersionModel:
    """What fold-in needs of one version: item factors, training preferences, settings, movie details."""

    def __init__(self, config: Config, client: redis.Redis, version: str, shard: tuple[int, int] = (1, 1)):
        self.version, self.client = version, client
        self.meta = rk.decode(client.get(rk.key(version, "meta"))) or {}
        self.settings = self.meta.get("fold_in") or {
            **config.als.implicit.model_dump(), "click_weight": config.events.click_weight}
        paths = run_paths(config, self.meta["run_id"])
        items = factors_of(read_table(join(paths.model("prod", "implicit"), "itemFactors")))
        self.items = ItemFactors(items.ids, items.matrix)
        ratings = read_table(paths.clean_ratings, ["user_id", "movie_id", "rating"]).to_pandas()
        clicks = read_table(paths.clean_clicks, ["user_id", "movie_id", "clicks"]).to_pandas() \
            if exists(paths.clean_clicks) else None
        self.preferences = Preferences.from_tables(ratings, clicks, self.settings, shard)
        self.dismissed: dict[int, set[int]] = defaultdict(set)
        if exists(paths.clean_dismissed):
            for user, movie in read_table(paths.clean_dismissed, ["user_id", "movie_id"]).to_pandas().itertuples(
                    index=False):
                self.dismissed[int(user)].add(int(movie))
        self.top_n = int(self.meta.get("top_n") or config.recommend.top_n)
        self._details: dict[int, dict] = {}
        log.info("speed layer on version %s (run %s): %d movies, %d users' training preferences", version,
                 self.meta["run_id"], len(self.items.ids), len(self.preferences.users))

    def details(self, movies: list[int]) -> list[dict | None]:
        missing = [m for m in movies if m not in self._details]
        if missing:
            values = redis_client.mget(self.client, [rk.key(self.version, "movie", m) for m in missing])
            for movie, value in zip(missing, values):
                self._details[movie] = rk.decode(value)
        return [self._details[m] for m in movies]

    def fresh_list(self, user: int, events: list[dict]) -> dict | None:
        """The person's list from their training preferences and their events since the version, or None when
        those leave nothing to fold in."""
        values = self.preferences.of(user)
        rated = set(values)
        named = self.preferences.rated_by(user)  # what `because` may name: ratings, not clicks
        rated_now: set[int] = set()
        excluded = set(self.dismissed.get(user, ()))
        for event in sorted(events, key=lambda e: stream_id_key(e["stream_id"])):
            movie = event["movie_id"]
            if movie not in self.items.known:
                continue
            if event["type"] == "rating":
                value = preference_values([event["rating"]], self.settings["confidence"],
                                          self.settings["threshold"])[0]
                if value == value:  # not NaN: a positive
                    values[movie] = value
                else:
                    values.pop(movie, None)
                rated_now.add(movie)
            elif event["type"] == "click" and movie not in rated | rated_now and self.settings["click_weight"] > 0:
                values[movie] = values.get(movie, 0.0) + self.settings["click_weight"]
            elif event["type"] == "dismiss":
                excluded.add(movie)
        counted = sum(1 for e in events if e["type"] in ("rating", "click"))
        if not values or not counted:  # a dismissal alone: the service's exclusions already hide the movie
            return None
        movies, prefs = self.preferences.scaled(values)
        vector = fold_in(self.items, movies, prefs, self.settings["alpha"], self.settings["reg_param"])
        best = top_n(self.items, vector, self.top_n, rated | rated_now | excluded)
        reasons = because(self.items, movies, prefs, self.settings["alpha"], self.settings["reg_param"],
                          [movie for movie, _ in best], [m in named or m in rated_now for m in movies.tolist()])
        details = self.details([movie for movie, _ in best])
        named_now = sorted(set(reasons) - {None})
        titles = dict(zip(named_now, self.details(named_now)))
        items = []
        for (_, score), d, reason in zip(best, details, reasons):
            if not d:
                continue
            item = {"movie_id": d["movie_id"], "title": d["title"], "year": d["year"], "genres": d["genres"],
                    "score": round(score, 5)}
            if reason is not None and titles.get(reason):
                item["because"] = {"movie_id": reason, "title": titles[reason]["title"]}
            items.append(item)
        return {"version": self.version, "events": counted, "updated_at": round(time.time(), 3), "items": items}


class SpeedLayer:
    def __init__(self, config: Config, consumer: str = "speed-1", shard: tuple[int, int] = (1, 1)):
        self.config, self.consumer, self.shard = config, consumer, shard
        self.group = rk.speed_group(*shard)
        self.client = redis_client.writer(config.redis)
        self.models: dict[str, VersionModel] = {}  # the live version, and an experiment's treatment
        self.state: tuple[str, dict | None] | None = None  # (live version, running experiment)
        self.events: dict[int, dict[str, dict]] = defaultdict(dict)  # user -> stream id -> event
        self.ttl_s = config.events.recent_ttl_days * 86_400
        self.stopping = False

    @property
    def model(self) -> VersionModel | None:
        """The live version's model."""
        return self.models.get(self.state[0]) if self.state else None

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(rk.EVENTS, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def model_for(self, user: int) -> VersionModel:
        """The model of the version this person is served: their experiment arm's, else the live one."""
        live, experiment = self.state
        return self.models[experiment[arm_of(experiment, user)] if experiment else live]

    def follow_live(self) -> bool:
        """Load the live version (and a running experiment's treatment) when they changed; True when they did
        (every person is folded in again)."""
        raw_live, raw_experiment = redis_client.mget(self.client, [rk.LIVE, rk.EXPERIMENT])
        live, experiment = (raw_live or b"").decode(), rk.decode(raw_experiment)
        if not live or self.state == (live, experiment):
            return False
        wanted = {live} | ({experiment["control"], experiment["treatment"]} if experiment else set())
        self.models = {v: self.models.get(v) or VersionModel(self.config, self.client, v, self.shard)
                       for v in wanted}
        self.state = (live, experiment)
        VERSION.clear()
        for version in wanted:
            VERSION.labels(version=version).set(1)
        self.events.clear()
        # Everyone's events since the oldest of these versions, from the stream itself; each model folds in only
        # the events after its own high-water mark.
        marks = [m.meta.get("events_high_water") or "0-0" for m in self.models.values()]
        start = f"({min(marks, key=stream_id_key)}"
        while True:
            page = self.client.xrange(rk.EVENTS, min=start, count=self.config.events.archive_page)
            if not page:
                break
            self.take(page)
            start = f"({page[-1][0].decode()}"
        self.write(list(self.events), time.time())
        return True

    def take(self, entries) -> set[int]:
        """Events keyed by stream id (an entry read twice counts once); returns the people they concern."""
        touched = set()
        for stream_id, fields in entries:
            try:
                event = orjson.loads(fields[FIELD.encode()])
            except (KeyError, orjson.JSONDecodeError):
                continue
            sid = stream_id.decode()
            user = event.get("user_id")
            if not isinstance(user, int) or user % self.shard[1] != self.shard[0] - 1:  # not ours
                continue
            if sid not in self.events[user]:
                EVENTS_READ.inc()
            self.events[user][sid] = {**event, "stream_id": sid}
            touched.add(user)
        PEOPLE.set(len(self.events))
        return touched

    def write(self, users, oldest_event_s: float) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for user in users:
                model = self.model_for(user)
                since = stream_id_key(model.meta.get("events_high_water") or "0-0")
                fresh = model.fresh_list(user, [e for sid, e in self.events[user].items()
                                                if stream_id_key(sid) > since])
                if fresh is not None:
                    pipe.set(rk.fresh(user), orjson.dumps(fresh), ex=self.ttl_s)
                    FOLD_INS.inc()
            pipe.execute()
        FRESHNESS.observe(max(0.0, time.time() - oldest_event_s))

    def step(self, block_ms: int = 1000) -> int:
        """Read what is new (first what this consumer read and did not acknowledge before), fold it in, write,
        acknowledge. Returns the entries handled."""
        self.follow_live()
        if self.model is None:
            time.sleep(block_ms / 1000)
            return 0
        handled = 0
        for start in ("0", ">"):
            reply = self.client.xreadgroup(self.group, self.consumer, {rk.EVENTS: start}, count=500,
                                           block=None if start == "0" else block_ms)
            entries = reply[0][1] if reply else []
            entries = [(sid, fields) for sid, fields in entries if fields]  # a trimmed pending entry: nil fields
            if not entries:
                continue
            touched = self.take(entries)
            oldest = min(stream_id_key(sid.decode())[0] for sid, _ in entries) / 1000
            if touched:
                self.write(touched, oldest)
            self.client.xack(rk.EVENTS, self.group, *[sid for sid, _ in entries])
            handled += len(entries)
        self.report_lag()
        return handled

    def report_lag(self) -> None:
        for group in self.client.xinfo_groups(rk.EVENTS):
            if group["name"] in (self.group, self.group.encode()) and group.get("lag") is not None:
                LAG.set(group["lag"])

    def run(self) -> None:
        self.ensure_group()
        while not self.stopping:
            try:
                self.step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("Redis unreachable (%s); retrying", exc)
                time.sleep(1)


def shard_of(text: str) -> tuple[int, int]:
    """"k/n" -> (k, n), 1 <= k <= n."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes k/n (e.g. 1/2), got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard k/n needs 1 <= k <= n, got {text!r}")
    return k, n


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m jobs.speed_layer", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config file (default: $RECO_CONFIG or conf/local.yaml)")
    parser.add_argument("--consumer", default="speed-1", help="this process's name in the consumer group")
    parser.add_argument("--shard", default="1/1", type=shard_of,
                        help="k/n: fold in the people with user_id %% n == k - 1 (n speed layers share them)")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics here (0: off)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics endpoint")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s speed_layer %(levelname)s %(message)s")
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_host)
    layer = SpeedLayer(load_config(args.config), args.consumer, args.shard)
    signal.signal(signal.SIGTERM, lambda *_: setattr(layer, "stopping", True))
    layer.run()


if __name__ == "__main__":
    main()
