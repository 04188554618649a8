"""Scale benchmark: the whole pipeline, publication into a real Redis included, on MovieLens-shaped synthetic
data at several sizes (SCALE=1m,10m,25m; benchmarks/synthetic_movielens.py), each job as its own spark-submit.
Beside each size, in the same run:
- the same training ratings through the `implicit` library's CPU ALS (same rank, iterations, regularisation;
  Cholesky, the maths MLlib does, and conjugate gradient), against our MLlib fit on the same ratings;
- top-N for all users, and every movie's neighbours, against numpy BLAS floors on the production model's own
  factor matrices (the recommend job times each step), and what naming each list's `because` movie costs;
- the content step: building every catalogue movie's content vector (genres, decade, year, and the synthetic tags
  and genome where the release has them), and the neighbours of the movies nobody rated against the same numpy
  floor on a matrix of the same shape (the floor's cost is the shape's: a matmul and a partition); for them, the
  seconds to map their factors from content and pick each user's best (new_picks), and their lists by genre
  (new_lists);
- publication keys/s against `redis-benchmark` pipelined SET of values of the version's mean size: of as many
  new keys as the version has (the same work: every key new memory for Redis), and, as before, of 500,000 SETs
  over 100,000 keys (mostly overwrites, cheaper for Redis); Redis memory per version and per list.
conf/large.yaml unless --config.
Writes benchmarks/results/scale.json and scale.md (time and memory only: synthetic lists say nothing of quality).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_pipeline import BIN, JOBS, REPO, measure
from benchmarks.harness import RedisServer
from benchmarks.report import done_with, markdown_table, scratch_folder, write
from benchmarks.synthetic_movielens import PRESETS, generate, scaled
from benchmarks.synthetic_movielens import write as write_release
from schemas import redis_keys as rk

SIZES = {"0.1m": ("ml-1m", 0.1), "1m": ("ml-1m", 1.0), "2.5m": ("ml-25m", 0.1), "10m": ("ml-10m", 1.0),
         "25m": ("ml-25m", 1.0), "32m": ("ml-32m", 1.0), "seed": ("seed", 1.0)}
DATASET_OF_PRESET = {"ml-1m": "ml-1m", "ml-10m": "ml-20m", "ml-25m": "ml-25m", "ml-32m": "ml-32m", "seed": "ml-32m"}


def run_size(size: str, work: Path, config_file: Path, threads: int) -> dict:
    preset, factor = SIZES[size]
    shape = scaled(PRESETS[preset], factor)
    folder = work / size / "source"
    started = time.perf_counter()
    ratings, movies = generate(shape, 42)
    write_release(folder, shape.layout, ratings, movies)
    generated_s = time.perf_counter() - started
    redis_server = RedisServer(work / size / "redis").start()
    env = {**os.environ, "RECO_DATA_ROOT": str(work / size / "data"), "RECO_REDIS_URL": redis_server.url,
           "RECO_MOVIELENS_DIR": str(folder), "RECO_MOVIELENS_ROOTS": str(work),
           "RECO_DATASET": DATASET_OF_PRESET[preset],
           "PYSPARK_PYTHON": sys.executable, "PATH": f"{BIN}:{os.environ['PATH']}",
           "RECO_CONFIG": str(config_file)}
    jobs = {}
    try:
        for job in JOBS:
            # Synthetic lists say nothing of quality (popularity can win on them): publish past the gate.
            force = ["--force"] if job == "publish" else []
            jobs[job] = measure([str(BIN / "spark-submit"), "--master", "local[2]", "--driver-memory", "8g",
                                 str(REPO / "jobs" / f"{job}.py"), "--run-id", "scale", *force], env)
            print(size, job, jobs[job], flush=True)
        # The DAG's smoke check, as its task runs it (no Spark).
        jobs["smoke_check"] = measure([sys.executable, "-c", "from conf.settings import load_config; from "
                                       "jobs.lib.publication.versions import check_published_run; "
                                       "print(check_published_run(load_config(), 'scale'))"], env)
        print(size, "smoke_check", jobs["smoke_check"], flush=True)
        speed = speed_layer_start(env, work / size)
        print(size, "speed layer", speed, flush=True)
        redis = floors(redis_server, work / size / "data" / "runs" / "scale", threads)
    finally:
        redis_server.stop()
    run = work / size / "data" / "runs" / "scale"
    train_report = json.loads((run / "train" / "report.json").read_text())
    publish_report = json.loads((run / "publish.json").read_text())
    recommend_report = json.loads((run / "recommend" / "report.json").read_text())
    return {"shape": {"users": shape.users, "movies": shape.movies, "ratings": len(ratings["user_id"])},
            "generate_s": round(generated_s, 1), "jobs": jobs,
            "total_s": round(sum(j["seconds"] for j in jobs.values()), 1),
            "peak_rss_mib": max(j["peak_rss_mib"] for j in jobs.values()),
            "fit_seconds": train_report["fit_seconds"], "params": train_report["params"]["implicit"],
            "recommend_seconds": recommend_report["seconds"], "content_shape": recommend_report["content_shape"],
            "new_movies": recommend_report["new_movies"],
            "publish": {"keys": publish_report["keys"], "keys_per_s": publish_report["keys_per_second"]},
            "speed_layer": speed, **redis}


def speed_layer_start(env: dict, folder: Path) -> dict:
    """The speed layer started on the published version (`python -m serving.speed`): seconds until it folds in
    (its version loaded), then one rating of a person the version knows folded in, and what it holds (RSS)."""
    import psutil
    import requests

    from benchmarks.harness import free_port, wait_until
    from schemas.events import to_stream_fields
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "serving.speed", "--metrics-port", str(port)], env=env,
                               cwd=REPO, stdout=open(folder / "speed.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "reco_speed_version_info{" in requests.get(f"http://127.0.0.1:{port}/metrics",
                                                                       timeout=1).text, 600, 0.1, "the speed layer")
        ready_s = time.perf_counter() - started
        import redis as redis_py
        client = redis_py.Redis.from_url(env["RECO_REDIS_URL"])
        client.xadd(rk.EVENTS, to_stream_fields({"user_id": 1, "movie_id": 1, "type": "rating", "rating": 5.0,
                                                  "ts": int(time.time())}))
        posted = time.perf_counter()
        wait_until(lambda: client.exists(rk.fresh(1)), 120, 0.01, "user 1's fold-in")
        first_s = time.perf_counter() - posted
        rss = psutil.Process(process.pid).memory_info().rss
    finally:
        process.terminate()
        process.wait(30)
    return {"ready_s": round(ready_s, 1), "first_fold_in_s": round(first_s, 2), "rss_mib": round(rss / 2**20)}


def floors(redis_server: RedisServer, run: Path, threads: int) -> dict:
    """Same-run floors: implicit's ALS on the training split; numpy top-N and neighbours on the production
    model's own factor matrices; redis-benchmark; Redis memory per version and per list."""
    import pyarrow.parquet as pq
    from scipy import sparse

    result = {}
    train = pq.read_table(run / "train" / "split" / "train.parquet").to_pandas()
    params = json.loads((run / "train" / "report.json").read_text())["params"]["implicit"]
    movies = train["movie_id"].to_numpy()
    confidence = train["rating"].to_numpy(np.float32)
    if params["item_popularity_exponent"]:  # the preferences MLlib fits (jobs/lib/als.implicit_preferences)
        per_movie = np.bincount(movies)
        scale = per_movie[movies] / per_movie[per_movie > 0].mean()
        confidence = confidence * scale ** params["item_popularity_exponent"]
    matrix = sparse.csr_matrix((confidence.astype(np.float32), (train["user_id"].to_numpy(), movies)))
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits
        for name, cg in (("implicit_cholesky_s", False), ("implicit_cg_s", True)):
            model = AlternatingLeastSquares(factors=params["rank"], regularization=params["reg_param"],
                                            alpha=params["alpha"], iterations=params["max_iter"], use_cg=cg,
                                            num_threads=threads, random_state=42, calculate_training_loss=False)
            started = time.perf_counter()
            with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads would fight them
                model.fit(matrix, show_progress=False)
            result[name] = round(time.perf_counter() - started, 1)
    except ImportError:
        result["implicit"] = "not installed (pip install implicit)"
    del train, matrix
    users, items, rated = production_factors(run)
    top_n = json.loads((run / "recommend" / "report.json").read_text())
    result["numpy_top_n_s"] = round(numpy_top_n(users, items, rated, top_n["top_n"]), 3)
    result["numpy_neighbors_s"] = round(numpy_neighbors(items, top_n["neighbors"]), 3)
    shape = top_n["content_shape"]
    content = np.random.default_rng(0).random(shape, dtype=np.float32)
    # The recommend job gives neighbours by content to the movies ALS does not know (the catalogue's last rows
    # here: the floor's cost is the shape's).
    result["numpy_content_neighbors_s"] = round(numpy_neighbors(content, top_n["neighbors"],
                                                                queries=top_n["new_movies"]), 3)
    del content
    client = redis_server.client()
    version = client.get(rk.LIVE).decode()
    result["redis_used_memory_mib"] = round(client.info("memory")["used_memory"] / 2**20, 1)
    for kind in ("user", "similar", "movie"):
        keys = [k for _, k in zip(range(200), client.scan_iter(match=f"reco:v:{version}:{kind}:*", count=1000))]
        sizes = [client.memory_usage(k) for k in keys]
        result[f"bytes_per_{kind}_key"] = round(float(np.mean(sizes))) if keys else None
    # The floors write values of the version's mean size: bytes, not only keys, cost Redis time.
    sample = [k for _, k in zip(range(2000), client.scan_iter(match=f"reco:v:{version}:*", count=1000))]
    result["mean_value_bytes"] = round(float(np.mean([client.strlen(k) for k in sample])))
    keys = json.loads((run / "publish.json").read_text())["keys"]
    # New keys, as many as the version's, from 10^9 (redis-benchmark's limit is 2^31): each SET is new memory.
    result["redis_set_pipelined_rps"] = redis_set_pipelined(redis_server.port, result["mean_value_bytes"], keys,
                                                            10**9)
    # The floor of the runs before 2026-11-24: mostly overwrites of 100,000 keys, which cost Redis less.
    result["redis_set_overwrite_rps"] = redis_set_pipelined(redis_server.port, result["mean_value_bytes"],
                                                            500_000, 100_000)
    return result


def production_factors(run: Path):
    """The production model's user and item factors (rows in id order) and the user x movie matrix of what each
    user rated (the recommend job keeps those out of their lists)."""
    import pyarrow.parquet as pq
    from scipy import sparse

    def factors(name):
        table = pq.read_table(run / "train" / "models" / "prod" / "implicit" / name).to_pandas()
        return table["id"].to_numpy(), np.stack(table["features"].to_numpy()).astype(np.float32)
    user_ids, users = factors("userFactors")
    item_ids, items = factors("itemFactors")
    ratings = pq.read_table(run / "clean" / "ratings.parquet", columns=["user_id", "movie_id"]).to_pandas()
    user_row = np.full(user_ids.max() + 1, -1)
    user_row[user_ids] = np.arange(len(user_ids))
    item_col = np.full(max(item_ids.max(), ratings["movie_id"].max()) + 1, -1)
    item_col[item_ids] = np.arange(len(item_ids))
    rows, cols = user_row[ratings["user_id"].to_numpy()], item_col[ratings["movie_id"].to_numpy()]
    keep = (rows >= 0) & (cols >= 0)
    rated = sparse.csr_matrix((np.ones(keep.sum(), np.float32), (rows[keep], cols[keep])),
                              shape=(len(user_ids), len(item_ids)))
    return users, items, rated


def numpy_top_n(user_factors, item_factors, rated, n: int, block: int = 2048) -> float:
    """Seconds for the best n unrated items of every user, as numpy matmul + argpartition in blocks."""
    started = time.perf_counter()
    items = item_factors.T.copy()
    for lo in range(0, user_factors.shape[0], block):
        scores = user_factors[lo:lo + block] @ items
        seen = rated[lo:lo + block].tocoo()
        scores[seen.row, seen.col] = -np.inf
        np.argpartition(-scores, n, axis=1)[:, :n]
    return time.perf_counter() - started


def numpy_neighbors(item_factors, n: int, block: int = 2048, queries: int | None = None) -> float:
    """Seconds for every movie's (the last `queries` movies') n nearest movies by cosine (itself excluded),
    numpy matmul + argpartition."""
    started = time.perf_counter()
    unit = item_factors / np.maximum(np.linalg.norm(item_factors, axis=1, keepdims=True), 1e-12)
    transposed = unit.T.copy()
    for lo in range(unit.shape[0] - (unit.shape[0] if queries is None else queries), unit.shape[0], block):
        scores = unit[lo:lo + block] @ transposed
        scores[np.arange(scores.shape[0]), np.arange(lo, lo + scores.shape[0])] = -np.inf
        np.argpartition(-scores, n, axis=1)[:, :n]
    return time.perf_counter() - started


def redis_set_pipelined(port: int, value_bytes: int, requests: int, keyspace: int) -> float:
    """SETs/s of redis-benchmark (8 clients, pipelines of 16) on random keys from `keyspace` keys."""
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "set", "-n", str(requests),
                          "-c", "8", "-d", str(value_bytes), "-P", "16", "-q", "-r", str(keyspace)],
                         capture_output=True, text=True, timeout=300).stdout
    return float(re.findall(r"([\d.]+) requests per second", out)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("SCALE", "0.1m,1m"),
                        help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--config", type=Path, default=REPO / "conf" / "large.yaml",
                        help="RECO_CONFIG for the jobs (default conf/large.yaml)")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    work = scratch_folder("bench-scale")
    results = {}
    for size in sizes:  # written after each size: a larger one that fails leaves the smaller ones' figures
        results[size] = run_size(size, work, args.config, threads=2)
        rows, header, notes = tables(results)
        write("scale", {"sizes": results, "config": str(args.config)}, rows, header,
              f"Synthetic MovieLens-shaped data (benchmarks/synthetic_movielens.py) with {args.config}; each job a "
              "spark-submit on local[2] into a real Redis. Command: make bench-scale SCALE=" + ",".join(results)
              + "\n\n" + notes)
    done_with(work)


def tables(results: dict) -> tuple[list, tuple, str]:
    """The main table (seconds per job, peak RSS), then as markdown: growth per job against the first size, and
    the same-run floors."""
    base_size = next(iter(results))
    base = results[base_size]

    def ratio(a, b):
        return f"{a / b:.3g}" if a is not None and b else "n/a"
    rows, growth, against, serving = [], [], [], []
    for size, r in results.items():
        times = r["shape"]["ratings"] / base["shape"]["ratings"]
        rows.append((size, f"{r['shape']['ratings']:,}", *(f"{r['jobs'][j]['seconds']:.0f}" for j in JOBS),
                     f"{r['jobs']['smoke_check']['seconds']:.0f}" if "smoke_check" in r["jobs"] else "n/a",
                     f"{r['total_s']:.0f}", f"{r['peak_rss_mib'] / 1024:.1f}"))
        growth.append((size, f"{times:.0f}x",
                       *(ratio(r["jobs"][j]["seconds"], base["jobs"][j]["seconds"]) for j in JOBS),
                       ratio(r["total_s"], base["total_s"])))
        recommend = r["recommend_seconds"]
        against.append((size, ratio(r["fit_seconds"]["eval_implicit_s"], r.get("implicit_cholesky_s")),
                        ratio(r["fit_seconds"]["eval_implicit_s"], r.get("implicit_cg_s")),
                        ratio(recommend["user_recs_s"], r["numpy_top_n_s"]),
                        ratio(recommend["item_neighbors_s"], r["numpy_neighbors_s"]),
                        f"{recommend['because_s']:.0f}" if "because_s" in recommend else "n/a",
                        "x".join(f"{d:,}" for d in r["content_shape"]) if "content_shape" in r else "n/a",
                        f"{recommend['content_vectors_s']:.0f}" if "content_vectors_s" in recommend else "n/a",
                        ratio(recommend.get("content_neighbors_s"), r.get("numpy_content_neighbors_s")),
                        f"{r['new_movies']:,}" if "new_movies" in r else "n/a",
                        f"{recommend['new_picks_s']:.1f}" if "new_picks_s" in recommend else "n/a",
                        f"{recommend['new_lists_s']:.1f}" if "new_lists_s" in recommend else "n/a",
                        ratio(r["publish"]["keys_per_s"], r["redis_set_pipelined_rps"]),
                        ratio(r["publish"]["keys_per_s"], r.get("redis_set_overwrite_rps")),
                        f"{r['redis_used_memory_mib']:.0f}", r["bytes_per_user_key"], r["bytes_per_similar_key"]))
        speed = r.get("speed_layer") or {}
        serving.append((size, f"{r['jobs']['smoke_check']['seconds']:.0f}" if "smoke_check" in r["jobs"] else "n/a",
                        speed.get("ready_s", "n/a"), speed.get("first_fold_in_s", "n/a"), speed.get("rss_mib", "n/a")))
    header = ("size", "ratings", *(f"{j} s" for j in JOBS), "smoke check s", "total s", "peak RSS GiB")
    notes = (f"Growth: time at each size / time at {base_size}\n\n"
             + markdown_table(("size", "ratings", *JOBS, "total"), growth)
             + "\nAgainst same-run floors (lower is better, except publish). MLlib fit: the eval implicit model on "
             "the 75% training split, ALS.fit alone (its preferences built and cached first, saving timed apart); "
             "implicit: the same preferences and settings, 2 threads, its matrix built first. top-N and neighbours: "
             "the recommend job's steps against numpy on the production model's factors:\n\n"
             + markdown_table(("size", "MLlib fit / implicit Cholesky", "MLlib fit / implicit CG",
                               "top-N / numpy", "neighbours / numpy", "because s", "content movies x columns",
                               "content vectors s", "content neighbours / numpy", "movies nobody rated",
                               "their factors from content + each user's best s", "their lists by genre s",
                               "publish / SET of new keys",
                               "publish / SET overwriting 100k keys",
                               "Redis MiB (one version)", "bytes per user list", "bytes per neighbour list"),
                              against)
             + "\nAfter publication: the smoke check as the DAG runs it, and the speed layer started on the version "
             "(until it folds in, then one rating of a known person folded in, and its resident memory):\n\n"
             + markdown_table(("size", "smoke check s", "speed layer ready s", "first fold-in s",
                               "speed layer RSS MiB"), serving))
    return rows, header, notes


if __name__ == "__main__":
    main()
