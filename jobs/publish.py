"""publish: write a run's answers into Redis as a new version, verify it, then switch the live pointer.

    spark-submit jobs/publish.py --run-id RUN [--force]     publish (refused when metrics say not publishable)
    spark-submit jobs/publish.py --rollback [VERSION]       point live back to a kept version (default: previous)
    spark-submit jobs/publish.py --prune                    delete versions beyond the retention count

Values are built in Spark in the exact shape the API returns and written from the executors with pipelined
MSETs. Readers never see half a version: the pointer moves only after every key is written and counted.
"""
from __future__ import annotations

import argparse
import logging
import random
import time
from datetime import datetime, timezone

import redis
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from conf.settings import Config, RedisSettings
from jobs.common import JobError, job_main, read_json, run_paths, spark_session, utc_now, write_json
from schemas import redis_keys as rk

log = logging.getLogger("reco.publish")

BATCH_KEYS = 500       # keys per MSET
PIPELINE_KEYS = 5000   # keys per pipeline round trip
DELETE_BATCH = 1000    # keys per UNLINK when pruning


def connect(settings: RedisSettings) -> redis.Redis:
    """A client for the writer side (password and TLS come with the URL: redis://:pw@host, rediss://...)."""
    return redis.Redis.from_url(settings.url, socket_timeout=max(settings.socket_timeout, 5.0),
                                socket_connect_timeout=max(settings.connect_timeout, 2.0))


# ---------------------------------------------------------------- building values (pure DataFrame functions)


def _item(movies: DataFrame, id_col: str) -> DataFrame:
    """Columns of an API item for the movie in id_col: movie_id, title, year, genres."""
    return movies.select(F.col("movie_id").alias(id_col), F.struct(
        F.col("movie_id"), "title", "year", "genres").alias("_movie"))


def _json_list(frame: DataFrame, group_col: str, movie_col: str, movies: DataFrame) -> DataFrame:
    """(group_col, value): a JSON array of items ordered by rank."""
    with_movie = frame.join(_item(movies, movie_col), movie_col)
    item = F.struct("rank", F.struct(
        F.col("_movie.movie_id"), F.col("_movie.title"), F.col("_movie.year"), F.col("_movie.genres"),
        F.round("score", 5).alias("score")).alias("item"))
    return with_movie.groupBy(group_col).agg(
        F.to_json(F.transform(F.array_sort(F.collect_list(item)), lambda s: s["item"])).alias("value"))


def build_values(version: str, user_recs: DataFrame, neighbors: DataFrame, popular: DataFrame,
                 movies: DataFrame, movie_stats: DataFrame) -> DataFrame:
    """Every (key, value) of a version except meta, values as the API serves them."""
    def keyed(frame: DataFrame, kind: str, ident: str) -> DataFrame:
        return frame.select(F.concat(F.lit(rk.kind_prefix(version, kind)), F.col(ident).cast("string"))
                            .alias("key"), "value")

    users = keyed(_json_list(user_recs, "user_id", "movie_id", movies), "user", "user_id")
    similar = keyed(_json_list(neighbors, "movie_id", "neighbor_id", movies), "similar", "movie_id")
    popular_lists = keyed(_json_list(popular, "genre", "movie_id", movies), "popular", "genre")
    details = keyed(movies.join(movie_stats, "movie_id", "left").select(
        "movie_id", F.to_json(F.struct("movie_id", "title", "year", "genres",
                                       F.coalesce("n_ratings", F.lit(0)).alias("n_ratings"),
                                       F.round("mean_rating", 3).alias("mean_rating"))).alias("value")),
        "movie", "movie_id")
    return users.unionByName(similar).unionByName(popular_lists).unionByName(details) \
        .unionByName(title_index(version, movies, movie_stats))


def title_index(version: str, movies: DataFrame, movie_stats: DataFrame) -> DataFrame:
    """(key, value): per title word, the movies having it, most rated first (the service intersects them)."""
    spark = movies.sparkSession
    ranked = movies.join(movie_stats, "movie_id", "left").select(
        "movie_id", "title", F.coalesce("n_ratings", F.lit(0)).alias("n"))
    pairs = ranked.rdd.flatMap(
        lambda row: [(token, row["n"], row["movie_id"]) for token in set(rk.title_tokens(row["title"]))])
    tokens = spark.createDataFrame(pairs, "token string, n long, movie_id int")
    return tokens.groupBy("token").agg(F.to_json(F.transform(
        F.array_sort(F.collect_list(F.struct((-F.col("n")).alias("neg_n"), "movie_id"))),
        lambda s: s["movie_id"])).alias("value")).select(
        F.concat(F.lit(rk.kind_prefix(version, "title")), "token").alias("key"), "value")


# ---------------------------------------------------------------- writing


def write_partitions(values: DataFrame, url: str) -> int:
    """Write (key, value) rows from the executors, pipelined MSETs; returns the number of keys Redis accepted.

    Rows arrive as Arrow batches (mapInArrow): no per-row Python objects beyond the key and value strings."""
    import pyarrow as pa

    def write(batches):
        client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
        pipe, written, pending = client.pipeline(transaction=False), 0, 0
        for batch in batches:
            keys, texts = batch.column("key").to_pylist(), batch.column("value").to_pylist()
            for start in range(0, len(keys), BATCH_KEYS):
                chunk = dict(zip(keys[start:start + BATCH_KEYS], texts[start:start + BATCH_KEYS]))
                pipe.mset(chunk)
                pending += len(chunk)
                if pending >= PIPELINE_KEYS:
                    written += _flush(pipe, pending)
                    pending = 0
        written += _flush(pipe, pending)
        client.close()
        yield pa.RecordBatch.from_pydict({"written": [written]})

    return sum(row["written"] for row in values.select("key", "value").mapInArrow(write, "written long").collect())


def _flush(pipe, pending: int) -> int:
    if not pending:
        return 0
    if not all(pipe.execute()):
        raise JobError("Redis refused a write")
    return pending


def count_version_keys(client: redis.Redis, version: str) -> int:
    return sum(1 for _ in client.scan_iter(match=rk.version_pattern(version), count=10_000))


def delete_version(client: redis.Redis, version: str) -> int:
    """UNLINK a version's keys in batches (frees memory in the background, never blocks Redis for long)."""
    deleted, batch = 0, []
    for key in client.scan_iter(match=rk.version_pattern(version), count=10_000):
        batch.append(key)
        if len(batch) >= DELETE_BATCH:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    client.zrem(rk.VERSIONS, version)
    return deleted


def prune(client: redis.Redis, retention: int) -> list[str]:
    """Keep the `retention` newest versions and the live one; delete the rest."""
    live = _live(client)
    newest_first = [v.decode() for v in client.zrevrange(rk.VERSIONS, 0, -1)]
    doomed = [v for v in newest_first[retention:] if v != live]
    for version in doomed:
        log.info("pruning version %s (%d keys)", version, delete_version(client, version))
    return doomed


def _live(client: redis.Redis) -> str | None:
    value = client.get(rk.LIVE)
    return value.decode() if value else None


def rollback(client: redis.Redis, version: str | None = None) -> dict:
    """Point live at `version`, or at the newest kept version older than the live one."""
    live = _live(client)
    kept = [v.decode() for v in client.zrevrange(rk.VERSIONS, 0, -1)]
    if version is None:
        older = kept[kept.index(live) + 1:] if live in kept else kept
        if not older:
            raise JobError(f"nothing to roll back to: kept versions are {kept}")
        version = older[0]
    if version not in kept or not client.exists(rk.key(version, "meta")):
        raise JobError(f"version {version!r} is not kept; kept versions: {kept}")
    client.set(rk.LIVE, version)
    log.info("live version: %s -> %s", live, version)
    return {"previous": live, "live": version}


def headline(metrics: dict) -> dict:
    k = metrics["k"]
    als = metrics["models"]["als"]
    names = [f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", "rmse", "mae", "coverage"]
    return {**{name: als.get(name) for name in names},
            f"popularity_ndcg@{k}": metrics["models"]["popularity"].get(f"ndcg@{k}")}


def publish(config: Config, run_id: str, spark: SparkSession, force: bool = False) -> dict:
    paths = run_paths(config, run_id)
    metrics = read_json(paths.metrics)
    if not metrics.get("publishable") and not force:
        failed = [g["gate"] for g in metrics.get("gates", []) if not g.get("passed")]
        raise JobError(f"run {run_id} is not publishable (failed gates: {failed}); use --force to publish anyway")
    client = connect(config.redis)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise JobError(f"Redis unreachable at {config.redis.url}: {exc}") from None

    version = f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')[:-3]}-{run_id}"
    movies = spark.read.parquet(paths.clean_movies)
    values = build_values(version, spark.read.parquet(paths.user_recs), spark.read.parquet(paths.item_neighbors),
                          spark.read.parquet(paths.popular), movies, spark.read.parquet(paths.movie_stats)).cache()
    try:
        # Keys per kind in one pass: the kind is the key's first part after the version prefix.
        kind = F.split(F.substring("key", len(rk.version_prefix(version)) + 1, 1 << 20), ":").getItem(0)
        counts = {row["kind"]: row["count"] for row in values.groupBy(kind.alias("kind")).count().collect()}
        expected = sum(counts.values())
        started = time.perf_counter()
        written = write_partitions(values, config.redis.url)
        write_seconds = time.perf_counter() - started
        in_redis = count_version_keys(client, version)
        if written != expected or in_redis != expected:
            raise JobError(f"version {version} incomplete: {expected} keys built, {written} acknowledged, "
                           f"{in_redis} found in Redis; live version unchanged")
        train_report = read_json(paths.train_report)
        meta = {"version": version, "run_id": run_id, "dataset": metrics["dataset"], "k": metrics["k"],
                "published_at": utc_now(), "trained_at": train_report["trained_at"],
                "metrics": headline(metrics), "counts": counts, "top_n": config.recommend.top_n,
                "forced": bool(force and not metrics.get("publishable"))}
        previous = _live(client)
        with client.pipeline(transaction=True) as flip:  # MULTI/EXEC: meta, registry and pointer together
            flip.set(rk.key(version, "meta"), rk.encode(meta))
            flip.zadd(rk.VERSIONS, {version: time.time()})
            flip.set(rk.LIVE, version)
            flip.execute()
    except BaseException:
        delete_version(client, version)  # leave no half version behind; the live pointer never moved
        raise
    finally:
        values.unpersist()
    pruned = prune(client, config.redis.retention)
    report = {"version": version, "previous": previous, "keys": expected + 1, "counts": counts,
              "write_seconds": round(write_seconds, 3), "keys_per_second": round(expected / write_seconds),
              "pruned": pruned, "published_at": meta["published_at"]}
    write_json(paths.publish_report, report)
    log.info("published version %s (%d keys, %.0f keys/s); previous %s", version, expected + 1,
             report["keys_per_second"], previous)
    return report


def smoke_check(config: Config, run_id: str, sample: int = 25, seed: int = 0) -> dict:
    """After publication: the live version is this run's, and a sample of its users and movies answer through
    the service's own reader. On any gap, point live back to the previous version and raise."""
    from serving.store import Store

    report = read_json(run_paths(config, run_id).publish_report)
    store = Store(config.redis.url, config.redis.socket_timeout, config.redis.connect_timeout, cache_entries=0)
    client = connect(config.redis)
    problems = []
    live = store.live_version(refresh=True)
    if live != report["version"]:
        problems.append(f"live version is {live}, this run published {report['version']}")
    rng = random.Random(seed)
    users = [int(k.decode().rsplit(":", 1)[1]) for k in
             client.scan_iter(match=rk.kind_prefix(report["version"], "user") + "*", count=1000)]
    movies = [int(k.decode().rsplit(":", 1)[1]) for k in
              client.scan_iter(match=rk.kind_prefix(report["version"], "similar") + "*", count=1000)]
    if len(users) != report["counts"]["user"] or len(movies) != report["counts"]["similar"]:
        problems.append(f"{len(users)} users and {len(movies)} movies found, publication counted "
                        f"{report['counts']['user']} and {report['counts']['similar']}")
    picked_users = rng.sample(users, min(sample, len(users)))
    picked_movies = rng.sample(movies, min(sample, len(movies)))
    _, values = store.lookup(*[rk.suffix("user", u) for u in picked_users],
                             *[rk.suffix("movie", m) for m in picked_movies],
                             rk.suffix("popular", rk.ALL_GENRES), rk.suffix("meta"))
    names = [f"user {u}" for u in picked_users] + [f"movie {m}" for m in picked_movies] + ["popular", "meta"]
    problems += [f"{name}: missing or empty" for name, value in zip(names, values) if not value]
    if problems:
        if report.get("previous"):
            rollback(client, report["previous"])
        raise JobError(f"smoke check failed ({'; '.join(problems[:5])}); live version: {_live(client)}")
    return {"version": live, "users_checked": len(picked_users), "movies_checked": len(picked_movies)}


def run(config: Config, run_id: str | None, spark: SparkSession | None = None, force: bool = False,
        rollback_to: str | bool | None = None, prune_only: bool = False) -> dict:
    if rollback_to is not None:
        return rollback(connect(config.redis), rollback_to or None)
    if prune_only:
        return {"pruned": prune(connect(config.redis), config.redis.retention)}
    if not run_id:
        raise JobError("--run-id is required to publish")
    return publish(config, run_id, spark or spark_session(config, "publish"), force=force)


def _arguments(parser) -> None:
    parser.add_argument("--force", action=argparse.BooleanOptionalAction, default=False,
                        help="publish even when metrics.json says not publishable")
    parser.add_argument("--rollback", dest="rollback_to", nargs="?", const="", default=None, metavar="VERSION",
                        help="point live at VERSION (default: the previous kept version) and exit")
    parser.add_argument("--prune", dest="prune_only", action="store_true",
                        help="delete versions beyond redis.retention and exit")


def main() -> None:
    job_main("publish", __doc__.splitlines()[0], run, _arguments, run_id_required=False)


if __name__ == "__main__":
    main()
