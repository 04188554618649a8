"""Freshness benchmark: how soon a person's answer follows their rating, and what fold-in costs.

- freshness: a probe posts one rating for a new person through the real service (gunicorn) and polls their
  recommendations until the answer is their fold-in counting it; p50/p99 over the probes, while other people
  send single events at a steady rate (default 200 events/s) and then as fast as 4 senders can;
- quality, on the GUIDE protocol (ML-100K, per-user 75/25 split): 10% of the users held out of training
  entirely; their training ratings folded in against the model of the others, in process with the speed layer's
  own code (schemas/ranking.py) and over HTTP (a version trained without them goes live, their ratings
  are posted to the intake, and their recommendations read back once the speed layer counts all of them); their
  NDCG@10 on their test ratings against (a) the model trained with them, (b) similar_to_recent (the service's
  merge of the neighbour lists of their 10 latest ratings), (c) popularity;
- dismissals: trained as exclusions or as negatives, and how often exclusions shorten an answer
  (dismissals_and_exclusions);
- cost: fold-ins per second on one core (a person's vector solved and every movie scored), at ML-100K from the
  full run's own files, and at the ML-25M shape (62,423 movies, rank 64, 100 ratings a person) on random
  factors; `because` (the rated movie behind each of a top 50) per person at the 25M shape; and the memory of
  the speed layer's training preferences at the 25M shape (25M ratings).
Writes benchmarks/results/fresh.json and fresh.md.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import requests

from benchmarks.harness import GunicornService, RedisServer, wait_until, write_config
from benchmarks.report import done_with, scratch_folder, write
from conf.settings import load_config
from schemas.preferences import TrainingPreferences, rating_values, training_pairs
from schemas.ranking import ItemFactors, because, fold_in

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
        vector = fold_in(items, movies, prefs, settings["alpha"], settings["reg_param"]).vector
        items.top_n(vector, n, set(movies.tolist()))
    return len(people) / (time.perf_counter() - started)


def cost_at_25m_shape(settings: dict, people: int = 300) -> dict:
    rng = np.random.default_rng(0)
    movies, rank = 62_423, 64
    items = ItemFactors(np.arange(1, movies + 1), rng.normal(0, 0.1, (movies, rank)).astype(np.float32))
    sample = [(rng.choice(np.arange(1, movies + 1), 100, replace=False), rng.uniform(0.5, 5, 100).astype(np.float32))
              for _ in range(people)]
    per_s = fold_ins_per_second(items, sample, settings)
    # `because` for a person's published top 50 (jobs/lib/model/explain.py runs it once per person in recommend):
    # people per second on one core, and what that makes for ML-25M's 162,541 people on 2 cores.
    started = time.perf_counter()
    for movies_rated, prefs in sample:
        because(items, fold_in(items, movies_rated, prefs, settings["alpha"], settings["reg_param"], explain=True),
                rng.choice(np.arange(1, movies + 1), 50, replace=False))
    because_per_s = people / (time.perf_counter() - started)
    # The training preferences at 25M ratings (162,541 people), built as the recommend job builds the speed layer's
    # bundle (which the speed layer memory-maps: held here whole).
    gc.collect()
    before = psutil.Process().memory_info().rss
    ratings = pd.DataFrame({"user_id": rng.integers(1, 162_542, 25_000_095, dtype=np.int32),
                            "movie_id": rng.integers(1, movies + 1, 25_000_095, dtype=np.int32),
                            "rating": rng.integers(1, 11, 25_000_095).astype(np.float32) / 2})
    started = time.perf_counter()
    preferences = training_from(ratings, settings)
    load_s = time.perf_counter() - started
    del ratings
    gc.collect()
    held = psutil.Process().memory_info().rss - before
    one = preferences.scaled(preferences.of(1))
    assert len(one[0]) > 0
    return {"movies": movies, "rank": rank, "ratings_per_person": 100, "fold_ins_per_s_one_core": round(per_s),
            "because_people_per_s_one_core": round(because_per_s),
            "because_25m_people_two_cores_s": round(162_541 / because_per_s / 2),
            "preferences_25m_mib": round(held / 2**20), "preferences_25m_load_s": round(load_s, 1)}


def training_from(ratings: pd.DataFrame, settings: dict) -> TrainingPreferences:
    """Training preferences (no clicks) as the recommend job builds them for the fold-in bundle."""
    none = np.zeros(0)
    pairs = training_pairs(ratings.user_id.to_numpy(), ratings.movie_id.to_numpy(), ratings.rating.to_numpy(),
                           none, none, none, settings)
    return TrainingPreferences.from_pairs(*pairs, settings)


def held_out_split(spark, config, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, set[int]]:
    """The GUIDE protocol's per-user split of the run's clean ratings, and 10% of the users held out of training
    entirely: (training part, test part, held-out users)."""
    from jobs.lib.model.splits import stratified_split
    from jobs.lib.runtime.run_layout import run_paths

    ratings = spark.read.parquet(run_paths(config, run_id).clean_ratings)
    train, test = stratified_split(ratings, config.split.train_ratio, config.split.seed)
    train_pd, test_pd = train.toPandas(), test.toPandas()
    users = np.sort(train_pd.user_id.unique())
    held = set(np.random.default_rng(42).choice(users, len(users) // 10, replace=False).tolist())
    return train_pd, test_pd, held


def scored(spark, lists: dict[str, list[tuple[int, list[int]]]], test_pd: pd.DataFrame, users: set[int],
           k: int) -> dict:
    """NDCG@k and recall@k of each named set of (user, ranked movies) on those users' test ratings."""
    from jobs.lib.evaluation.metrics import metric, score_lists

    truth = spark.createDataFrame(test_pd[test_pd.user_id.isin(users)][["user_id", "movie_id"]])
    scores = {}
    for name, rows in lists.items():
        recs = spark.createDataFrame([(u, rank + 1, int(m)) for u, ms in rows for rank, m in enumerate(ms)],
                                     "user_id int, rank int, movie_id int")
        measured = score_lists(recs, truth, k)
        scores[name] = {key: round(measured[key], 4) for key in (metric("ndcg", k), metric("recall", k))}
    return scores


def fold_in_quality(spark, config, split, k: int = 10) -> dict:
    from jobs.lib.evaluation.metrics import metric
    from jobs.lib.model.als import fit_implicit
    from jobs.lib.model.scoring import factors_of
    from serving.lists import merge_neighbours

    train_pd, test_pd, held = split
    train = spark.createDataFrame(train_pd)
    rest_pd = train_pd[~train_pd.user_id.isin(held)]
    implicit = config.als.implicit
    settings = {**implicit.model_dump(), "click_weight": config.events.click_weight}

    def factors(model):
        table = lambda frame: __import__("pyarrow").Table.from_pandas(frame.toPandas())  # noqa: E731
        return factors_of(table(model.userFactors)), factors_of(table(model.itemFactors))
    full_users, full_items = factors(fit_implicit(train, implicit, config.als))
    _, rest_items = factors(fit_implicit(spark.createDataFrame(rest_pd), implicit, config.als))
    full_catalogue = ItemFactors(full_items.ids, full_items.matrix)
    catalogue = ItemFactors(rest_items.ids, rest_items.matrix)
    preferences = training_from(rest_pd, settings)
    unit = catalogue.factors / np.maximum(np.linalg.norm(catalogue.factors, axis=1, keepdims=True), 1e-12)
    popular = rest_pd.groupby("movie_id").size().sort_values(ascending=False, kind="stable").index.tolist()
    middle = 3.0
    lists = {"full model (trained with them)": [], "fold-in": [], "similar_to_recent": [], "popularity": []}
    for user in sorted(held):
        theirs = train_pd[train_pd.user_id == user]
        seen = set(theirs.movie_id.tolist())
        vector = full_users.matrix[np.searchsorted(full_users.ids, user)]
        lists["full model (trained with them)"].append((user, [m for m, _ in full_catalogue.top_n(vector, k, seen)]))
        mapped = rating_values(theirs.rating.to_numpy(), settings["confidence"], settings["threshold"])
        values = {int(m): float(v) for m, v in zip(theirs.movie_id, mapped) if v == v and m in catalogue.known}
        movies, prefs = preferences.scaled(values)
        folded = fold_in(catalogue, movies, prefs, settings["alpha"], settings["reg_param"]).vector
        lists["fold-in"].append((user, [m for m, _ in catalogue.top_n(folded, k, seen)]))
        latest = theirs.sort_values("ts", ascending=False).head(10)
        seeds = sorted(((int(m), float(r)) for m, r in zip(latest.movie_id, latest.rating) if m in catalogue.known),
                       key=lambda pair: -pair[1])
        neighbours = []
        for movie, _ in seeds:
            row = unit[catalogue.rows(np.array([movie]))[0]]
            similar = ItemFactors(catalogue.ids, unit).top_n(row, 51, {movie})
            neighbours.append([{"movie_id": m, "score": sc} for m, sc in similar[:50]])
        merged = merge_neighbours(neighbours, [r - middle for _, r in seeds], seen)
        lists["similar_to_recent"].append((user, [i["movie_id"] for i in merged[:k]]))
        lists["popularity"].append((user, [m for m in popular if m not in seen][:k]))
    scores = scored(spark, lists, test_pd, held, k)
    full = scores["full model (trained with them)"][metric("ndcg", k)]
    return {"held_out_users": len(held), "k": k, "scores": scores,
            "fold_in_ratio_to_full": round(scores["fold-in"][metric("ndcg", k)] / full, 3)}


def release_without(folder: Path, ml100k: Path, train_pd: pd.DataFrame, held: set[int]) -> Path:
    """An ML-100K folder whose ratings are the training part without the held-out users: a version trained on
    it is what the speed layer folds them into over HTTP."""
    folder.mkdir(parents=True)
    shutil.copy(ml100k / "u.item", folder / "u.item")
    rest = train_pd[~train_pd.user_id.isin(held)][["user_id", "movie_id", "rating", "ts"]]
    rest.astype({"rating": int}).to_csv(folder / "u.data", sep="\t", header=False, index=False)
    return folder


def fold_in_over_http(base: str, train_pd: pd.DataFrame, held: set[int], k: int = 10,
                      timeout_s: float = 120) -> list[tuple[int, list[int]]]:
    """Each held-out person's training ratings posted to the real intake (oldest first, 100 to a request), then
    their recommendations read back once the speed layer has folded in all of them: [(user, top k)]."""
    session, lists = requests.Session(), []
    for user in sorted(held):
        theirs = train_pd[train_pd.user_id == user].sort_values("ts", kind="stable")
        events = [{"user_id": int(user), "movie_id": int(m), "type": "rating", "rating": float(r), "ts": int(t)}
                  for m, r, t in zip(theirs.movie_id, theirs.rating, theirs.ts)]
        for start in range(0, len(events), 100):
            answered = session.post(f"{base}/v1/events", json={"events": events[start:start + 100]}, headers=AUTH,
                                    timeout=10)
            assert answered.status_code == 202, answered.text
    deadline = time.monotonic() + timeout_s
    for user in sorted(held):
        expected = int((train_pd.user_id == user).sum())
        while True:
            body = session.get(f"{base}/v1/users/{user}/recommendations?k={k}", timeout=10).json()
            if body.get("source") == "fold_in" and body["fold_in"]["events"] == expected:
                lists.append((user, [item["movie_id"] for item in body["items"]]))
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"user {user}: not folded in with their {expected} ratings: {body}")
            time.sleep(0.05)
    return lists


def dismissals_and_exclusions(spark, config, run_id: str, k: int = 10, top: int = 50) -> dict:
    """Two questions on the GUIDE protocol (ML-100K, per-user 75/25 split), with the ratings of 2 stars or less
    in each training part standing for what a person would dismiss instead of rating:
    - should the next run train with a dismissal as an exclusion (dropped from training, never shown) or as a
      negative (MLlib's implicit preference 0 with confidence 1 + alpha * w)? NDCG@10 on the test part, and how
      many of the top 10 are movies the person rated 2 or less in the test part (what they would dismiss again);
    - how often do exclusions shorten an answer: each person's published top `top` (the model trained on the
      whole training part), less every movie of their test part as if they had rated all of it since the
      version, and no fold-in yet: answers of k shorter than k."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    from jobs.lib.evaluation.metrics import metric, score_lists
    from jobs.lib.model.als import implicit_als, implicit_preferences
    from jobs.lib.model.scoring import factors_of
    from jobs.lib.model.splits import stratified_split
    from jobs.lib.runtime.run_layout import run_paths

    ratings = spark.read.parquet(run_paths(config, run_id).clean_ratings)
    train, test = stratified_split(ratings, config.split.train_ratio, config.split.seed)
    train_pd, test_pd = train.toPandas(), test.toPandas()
    low = train_pd.rating <= 2
    kept, dismissed = train_pd[~low], train_pd[low]
    implicit = config.als.implicit
    truth = spark.createDataFrame(test_pd[["user_id", "movie_id"]])
    disliked = set(zip(test_pd.user_id[test_pd.rating <= 2], test_pd.movie_id[test_pd.rating <= 2]))
    seen = train_pd.groupby("user_id").movie_id.apply(set).to_dict()
    tested = test_pd.groupby("user_id").movie_id.apply(set).to_dict()

    def lists(preferences, n):
        model = implicit_als(implicit, config.als, preferences).fit(preferences)
        users = factors_of(pa.Table.from_pandas(model.userFactors.toPandas()))
        movies = factors_of(pa.Table.from_pandas(model.itemFactors.toPandas()))
        catalogue = ItemFactors(movies.ids, movies.matrix)
        return {int(u): [m for m, _ in catalogue.top_n(users.matrix[i], n, seen.get(int(u), set()))]
                for i, u in enumerate(users.ids.tolist())}

    def judged(ranked):
        recs = spark.createDataFrame([(u, rank + 1, m) for u, ms in ranked.items() for rank, m in enumerate(ms[:k])],
                                     "user_id int, rank int, movie_id int")
        measured = score_lists(recs, truth, k)
        return {"ndcg@10": round(measured[metric("ndcg", k)], 4),
                "disliked_in_top_10": round(sum((u, m) in disliked for u, ms in ranked.items() for m in ms[:k])
                                            / len(ranked), 4)}

    base = implicit_preferences(spark.createDataFrame(kept), implicit)
    training = {"exclusion (dropped from training, never shown)": base}
    for weight in (1.0, 3.0):
        negatives = spark.createDataFrame(dismissed[["user_id", "movie_id"]]).withColumn(
            "rating", F.lit(-weight).cast("float"))
        training[f"negative, w = {weight:g}"] = base.unionByName(negatives)
    variants = {name: judged(lists(preferences, k)) for name, preferences in training.items()}
    published = lists(implicit_preferences(train, implicit), top)
    shortened = [sum(1 for m in ms if m not in tested.get(u, ())) < k for u, ms in published.items()]
    return {"dismissed_share_of_training": round(float(low.mean()), 4), "variants": variants,
            "exclusions": {"people": len(published), "top": top, "k": k,
                           "mean_excluded_in_list": round(float(np.mean(
                               [len(set(ms) & tested.get(u, set())) for u, ms in published.items()])), 2),
                           "answers_shortened_share": round(float(np.mean(shortened)), 4)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="steady background events per second")
    parser.add_argument("--probes", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from benchmarks.bench_serving import prepare_run
    from jobs.lib.runtime.spark import spark_session
    from jobs.pipeline import run_pipeline
    from jobs.publish import run as publish
    work = scratch_folder("bench-fresh")
    redis_server = RedisServer(work / "redis").start()
    overrides = {"data.root": str(work / "data"), "redis.url": redis_server.url,
                 "als.implicit.rank": 64, "als.implicit.max_iter": 5, "als.explicit.max_iter": 5}
    config = load_config(REPO / "conf" / "local.yaml", overrides=overrides)
    spark = spark_session(config, "bench-fresh")
    run_id = prepare_run(config, spark)
    split = held_out_split(spark, config, run_id)
    quality = fold_in_quality(spark, config, split)
    dismissals = dismissals_and_exclusions(spark, config, run_id)
    # Live for the service below: the same settings trained without the held-out people, who are then folded in
    # over HTTP (intake, stream, speed layer, lookup).
    without = release_without(work / "without-held-out", Path(config.data.movielens_dir), split[0], split[2])
    rest_config = load_config(REPO / "conf" / "local.yaml", overrides={
        **overrides, "data.movielens_dir": str(without), "data.movielens_roots": [str(work)]})
    run_pipeline(rest_config, "without_held_out", spark=spark)
    publish(rest_config, "without_held_out", spark=spark, force=True)
    settings_file = write_config(work / "speed.yaml", {"data.root": str(work / "data"),
                                                       "events.max_per_minute": 10**9,
                                                       "events.max_per_user_per_minute": 10**9,
                                                       "events.backlog": 10**9})
    (work / "service").mkdir()
    server = GunicornService(redis_server.url, work / "service", env={
        "RECO_EVENTS_TOKEN": TOKEN, "RECO_CONFIG": str(settings_file)}).start()
    speed = subprocess.Popen([sys.executable, "-m", "serving.speed", "--config", str(settings_file)],
                             env={**os.environ, "RECO_REDIS_URL": redis_server.url}, cwd=REPO,
                             stdout=open(work / "speed.log", "wb"), stderr=subprocess.STDOUT)
    try:
        base = server.base_url
        movies = [i["movie_id"] for i in requests.get(f"{base}/v1/popular?k=100", timeout=5).json()["items"]]
        wait_until(lambda: redis_server.client().xinfo_groups("reco:{events}"), 60, what="the speed layer's group")
        over_http = fold_in_over_http(base, split[0], split[2])
        steady = freshness(base, movies, args.rate, args.probes, 3_000_000)
        flat_out = freshness(base, movies, 0.0, args.probes, 3_100_000)
    finally:
        speed.terminate()
        speed.wait(15)
        server.stop()
        redis_server.stop()

    name = "fold-in over HTTP (intake, speed layer, service)"
    quality["scores"][name] = scored(spark, {name: over_http}, split[1], split[2], 10)[name]
    quality["over_http_ratio_to_full"] = round(quality["scores"][name]["ndcg@10"] / quality["scores"][
        "full model (trained with them)"]["ndcg@10"], 3)
    spark.stop()

    # Cost at ML-100K: the full run's fold-in bundle (what the speed layer reads), every trained person.
    from jobs.lib.runtime.run_layout import run_paths
    from schemas import bundle
    model = bundle.read(run_paths(config, run_id).fold_in_bundle)
    items, settings, preferences = model.items, model.settings, model.training
    people = [preferences.scaled(preferences.of(int(u))) for u in preferences.users]
    small = {"movies": len(items.ids), "rank": int(items.factors.shape[1]), "people": len(people),
             "fold_ins_per_s_one_core": round(fold_ins_per_second(items, people, settings))}
    large = cost_at_25m_shape(settings)

    result = {"quality": quality, "dismissals": dismissals, "freshness_steady": steady, "freshness_max": flat_out,
              "cost_ml100k": small, "cost_25m_shape": large}
    shortening = dismissals["exclusions"]
    rows = [
        (f"freshness at {steady['events_per_s']} events/s (p50 / p99 / max ms)",
         f"{steady['p50_ms']} / {steady['p99_ms']} / {steady['max_ms']}"),
        (f"freshness with 4 senders as fast as they go, {flat_out['events_per_s']} events/s (p50 / p99 / max ms)",
         f"{flat_out['p50_ms']} / {flat_out['p99_ms']} / {flat_out['max_ms']}"),
        (f"fold-ins per second, one core, ML-100K ({small['movies']:,} movies, rank {small['rank']})",
         f"{small['fold_ins_per_s_one_core']:,}"),
        (f"fold-ins per second, one core, 25M shape ({large['movies']:,} movies, rank {large['rank']})",
         f"{large['fold_ins_per_s_one_core']:,}"),
        ("because for a top 50, 25M shape: people per second on one core / s for ML-25M's 162,541 people on 2 "
         "cores (numpy floor, the recommend job adds Spark's per-group cost)",
         f"{large['because_people_per_s_one_core']:,} / {large['because_25m_people_two_cores_s']:,}"),
        ("speed layer's training preferences at 25M ratings (MiB held / s to build)",
         f"{large['preferences_25m_mib']:,} / {large['preferences_25m_load_s']}"),
    ] + [(f"NDCG@10 / recall@10 of {quality['held_out_users']} held-out users: {name}",
          " / ".join(str(v) for v in figures.values())) for name, figures in quality["scores"].items()] + [
        (f"dismissals ({dismissals['dismissed_share_of_training']:.0%} of training) trained as {name}: NDCG@10 / "
         "disliked movies in the top 10", f"{figures['ndcg@10']} / {figures['disliked_in_top_10']}")
        for name, figures in dismissals["variants"].items()] + [
        (f"answers of {shortening['k']} shortened by exclusions (all of a person's test movies rated since the "
         f"version, no fold-in; their top {shortening['top']} holds {shortening['mean_excluded_in_list']} of them)",
         f"{shortening['answers_shortened_share']:.2%} of {shortening['people']} people")]
    notes = (f"Fold-in {quality['fold_in_ratio_to_full']} of the model trained with them in process, "
             f"{quality['over_http_ratio_to_full']} over HTTP (goal >= 0.95); over HTTP, the version live was "
             "trained without the held-out people and their training ratings went through the intake. "
             f"Goal: p99 <= 1 s at 200 events/s. {args.probes} probes each: a new person's rating, then their "
             "recommendations polled every 2 ms until folded in; the speed layer, gunicorn (2 workers), Redis and "
             "the load share the 2 cores. Dismissals: a training rating of 2 stars or less stands for a movie "
             "the person would dismiss (dismissals_and_exclusions). Command: make bench-fresh")
    write("fresh", result, rows, ("what", "figure"), notes)
    done_with(work)


if __name__ == "__main__":
    main()
