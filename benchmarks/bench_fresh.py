"""Freshness benchmark: how soon a person's answer follows their rating, and what fold-in costs.

- freshness: a probe posts one rating for a new person through the real service (gunicorn) and polls their
  recommendations until the answer is their fold-in counting it; p50/p99 over the probes, while other people
  send single events at a steady rate (default 200 events/s) and then as fast as 4 senders can;
- cost: fold-ins per second on one core (a person's vector solved and every movie scored), at ML-100K from the
  published run's own files, and at the ML-25M shape (62,423 movies, rank 64, 100 ratings a person) on random
  factors; and the memory of the speed layer's training preferences at the 25M shape (25M ratings).
Writes benchmarks/results/fresh.json and fresh.md.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import requests

from benchmarks.report import done_with, scratch_folder, write
from conf.settings import load_config
from jobs.lib.model.fold_in import ItemFactors, Preferences, fold_in, top_n
from tests.support import GunicornService, RedisServer, wait_until, write_config

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-fresh-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Load(threading.Thread):
    """Single click events from many people, `rate` per second in all (0: as fast as `senders` threads go)."""

    def __init__(self, base: str, movies: list[int], rate: float, senders: int = 4):
        super().__init__(daemon=True)
        self.base, self.movies, self.rate, self.senders = base, movies, rate, senders
        self.stop, self.sent = threading.Event(), 0
        self.lock = threading.Lock()

    def run(self):
        threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(self.senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _send(self, worker: int):
        rng, session = random.Random(worker), requests.Session()
        interval = self.senders / self.rate if self.rate else 0.0
        next_at = time.perf_counter()
        while not self.stop.is_set():
            event = {"user_id": 2_000_000 + rng.randrange(50_000), "movie_id": rng.choice(self.movies),
                     "type": "click"}
            session.post(f"{self.base}/v1/events", json={"events": [event]}, headers=AUTH, timeout=10)
            with self.lock:
                self.sent += 1
            if interval:
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))


def probe(base: str, user: int, movie: int) -> float:
    """Seconds from the 202 of the person's rating to the first answer folded in from it."""
    session = requests.Session()
    answered = session.post(f"{base}/v1/events", json={"events": [{"user_id": user, "movie_id": movie,
                                                                     "type": "rating", "rating": 5}]},
                            headers=AUTH, timeout=10)
    assert answered.status_code == 202, answered.text
    accepted = time.perf_counter()
    while True:
        body = session.get(f"{base}/v1/users/{user}/recommendations?k=10", timeout=10).json()
        if body.get("source") == "fold_in" and body["fold_in"]["events"] >= 1:
            return time.perf_counter() - accepted
        if time.perf_counter() - accepted > 30:
            raise TimeoutError(f"no fold-in for user {user} within 30 s")
        time.sleep(0.002)


def freshness(base: str, movies: list[int], rate: float, probes: int, first_user: int) -> dict:
    load = Load(base, movies, rate)
    load.start()
    time.sleep(1)
    started, sent_before = time.perf_counter(), load.sent
    seconds = [probe(base, first_user + i, movies[i % len(movies)]) for i in range(probes)]
    achieved = (load.sent - sent_before) / (time.perf_counter() - started)
    load.stop.set()
    load.join()
    return {"target_events_per_s": rate or "max", "events_per_s": round(achieved), "probes": probes,
            "p50_ms": round(percentile(seconds, 50) * 1000, 1), "p99_ms": round(percentile(seconds, 99) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1)}


def fold_ins_per_second(items: ItemFactors, people: list[tuple[np.ndarray, np.ndarray]], settings: dict,
                        n: int = 50) -> float:
    started = time.perf_counter()
    for movies, prefs in people:
        vector = fold_in(items, movies, prefs, settings["alpha"], settings["reg_param"])
        top_n(items, vector, n, set(movies.tolist()))
    return len(people) / (time.perf_counter() - started)


def cost_at_25m_shape(settings: dict, people: int = 300) -> dict:
    rng = np.random.default_rng(0)
    movies, rank = 62_423, 64
    items = ItemFactors(np.arange(1, movies + 1), rng.normal(0, 0.1, (movies, rank)).astype(np.float32))
    sample = [(rng.choice(np.arange(1, movies + 1), 100, replace=False), rng.uniform(0.5, 5, 100).astype(np.float32))
              for _ in range(people)]
    per_s = fold_ins_per_second(items, sample, settings)
    # The speed layer's training preferences at 25M ratings (162,541 people), built as it builds them.
    gc.collect()
    before = psutil.Process().memory_info().rss
    ratings = pd.DataFrame({"user_id": rng.integers(1, 162_542, 25_000_095, dtype=np.int32),
                            "movie_id": rng.integers(1, movies + 1, 25_000_095, dtype=np.int32),
                            "rating": rng.integers(1, 11, 25_000_095).astype(np.float32) / 2})
    started = time.perf_counter()
    preferences = Preferences.from_tables(ratings, None, settings)
    load_s = time.perf_counter() - started
    del ratings
    gc.collect()
    held = psutil.Process().memory_info().rss - before
    one = preferences.scaled(preferences.of(1))
    assert len(one[0]) > 0
    return {"movies": movies, "rank": rank, "ratings_per_person": 100, "fold_ins_per_s_one_core": round(per_s),
            "preferences_25m_mib": round(held / 2**20), "preferences_25m_load_s": round(load_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="steady background events per second")
    parser.add_argument("--probes", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from benchmarks.bench_serving import prepare_run
    from jobs.lib.runtime.spark import spark_session
    from jobs.publish import run as publish
    work = scratch_folder("bench-fresh")
    redis_server = RedisServer(work / "redis").start()
    overrides = {"data.root": str(work / "data"), "redis.url": redis_server.url,
                 "als.implicit.rank": 64, "als.implicit.max_iter": 5, "als.explicit.max_iter": 5}
    config = load_config(REPO / "conf" / "local.yaml", overrides=overrides)
    spark = spark_session(config, "bench-fresh")
    run_id = prepare_run(config, spark)
    publish(config, run_id, spark=spark)
    spark.stop()
    settings_file = write_config(work / "speed.yaml", {"data.root": str(work / "data"),
                                                       "events.max_per_minute": 10**9,
                                                       "events.max_per_user_per_minute": 10**9,
                                                       "events.backlog": 10**9})
    (work / "service").mkdir()
    server = GunicornService(redis_server.url, work / "service", env={
        "RECO_EVENTS_TOKEN": TOKEN, "RECO_CONFIG": str(settings_file)}).start()
    speed = subprocess.Popen([sys.executable, "-m", "jobs.speed_layer", "--config", str(settings_file)],
                             env={**os.environ, "RECO_REDIS_URL": redis_server.url}, cwd=REPO,
                             stdout=open(work / "speed.log", "wb"), stderr=subprocess.STDOUT)
    try:
        base = server.base_url
        movies = [i["movie_id"] for i in requests.get(f"{base}/v1/popular?k=100", timeout=5).json()["items"]]
        wait_until(lambda: redis_server.client().xinfo_groups("reco:{events}"), 60, what="the speed layer's group")
        steady = freshness(base, movies, args.rate, args.probes, 3_000_000)
        flat_out = freshness(base, movies, 0.0, args.probes, 3_100_000)
    finally:
        speed.terminate()
        speed.wait(15)
        server.stop()
        redis_server.stop()

    # Cost at ML-100K: the published run's own factors and preferences, every trained person.
    from jobs.lib.model.scoring import factors_of
    from jobs.lib.runtime.run_layout import run_paths
    from jobs.lib.runtime.storage import join, read_table
    paths = run_paths(config, run_id)
    factors = factors_of(read_table(join(paths.model("prod", "implicit"), "itemFactors")))
    items = ItemFactors(factors.ids, factors.matrix)
    settings = {**config.als.implicit.model_dump(), "click_weight": config.events.click_weight}
    preferences = Preferences.from_tables(read_table(paths.clean_ratings).to_pandas(), None, settings)
    people = [preferences.scaled(preferences.of(int(u))) for u in preferences.users]
    small = {"movies": len(items.ids), "rank": int(factors.matrix.shape[1]), "people": len(people),
             "fold_ins_per_s_one_core": round(fold_ins_per_second(items, people, settings))}
    large = cost_at_25m_shape(settings)

    result = {"freshness_steady": steady, "freshness_max": flat_out, "cost_ml100k": small, "cost_25m_shape": large}
    rows = [
        (f"freshness at {steady['events_per_s']} events/s (p50 / p99 / max ms)",
         f"{steady['p50_ms']} / {steady['p99_ms']} / {steady['max_ms']}"),
        (f"freshness with 4 senders as fast as they go, {flat_out['events_per_s']} events/s (p50 / p99 / max ms)",
         f"{flat_out['p50_ms']} / {flat_out['p99_ms']} / {flat_out['max_ms']}"),
        (f"fold-ins per second, one core, ML-100K ({small['movies']:,} movies, rank {small['rank']})",
         f"{small['fold_ins_per_s_one_core']:,}"),
        (f"fold-ins per second, one core, 25M shape ({large['movies']:,} movies, rank {large['rank']})",
         f"{large['fold_ins_per_s_one_core']:,}"),
        ("speed layer's training preferences at 25M ratings (MiB held / s to build)",
         f"{large['preferences_25m_mib']:,} / {large['preferences_25m_load_s']}"),
    ]
    notes = (f"Goal: p99 <= 1 s at 200 events/s. {args.probes} probes each: a new person's rating, then their "
             "recommendations polled every 2 ms until folded in; the speed layer, gunicorn (2 workers), Redis and "
             "the load share the 2 cores. Command: make bench-fresh")
    write("fresh", result, rows, ("what", "figure"), notes)
    done_with(work)


if __name__ == "__main__":
    main()
