"""Scale benchmark: the whole pipeline, publication into a real Redis included, on MovieLens-shaped synthetic
data at several sizes (SCALE=1m,10m,25m; benchmarks/synthetic_movielens.py), each job as its own spark-submit.
Beside each size, in the same run:
- the same training ratings through the `implicit` library's CPU ALS (same rank, iterations, regularisation;
  Cholesky, the maths MLlib does, and conjugate gradient), against our MLlib fit on the same ratings;
- top-N for all users against a numpy BLAS floor on the same factor matrices;
- publication keys/s against `redis-benchmark` pipelined SET, and Redis memory per version and per list.
Writes benchmarks/results/scale.json and scale.md (time and memory only: synthetic lists say nothing of quality).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_pipeline import BIN, JOBS, REPO, measure
from benchmarks.report import write
from schemas import redis_keys as rk
from benchmarks.synthetic_movielens import PRESETS, generate, scaled
from benchmarks.synthetic_movielens import write as write_release
from tests.support import RedisServer

SIZES = {"0.1m": ("ml-1m", 0.1), "1m": ("ml-1m", 1.0), "10m": ("ml-10m", 1.0), "25m": ("ml-25m", 1.0),
         "32m": ("ml-32m", 1.0)}
DATASET_OF_PRESET = {"ml-1m": "ml-1m", "ml-10m": "ml-20m", "ml-25m": "ml-25m", "ml-32m": "ml-32m"}


def run_size(size: str, work: Path, config_file: Path | None, threads: int) -> dict:
    preset, factor = SIZES[size]
    shape = scaled(PRESETS[preset], factor)
    folder = work / size / "source"
    started = time.perf_counter()
    ratings, movies = generate(shape, 42)
    write_release(folder, shape.layout, ratings, movies)
    generated_s = time.perf_counter() - started
    redis_server = RedisServer(work / size / "redis").start()
    env = {**os.environ, "RECO_DATA_ROOT": str(work / size / "data"), "RECO_REDIS_URL": redis_server.url,
           "RECO_MOVIELENS_DIR": str(folder), "RECO_DATASET": DATASET_OF_PRESET[preset],
           "PYSPARK_PYTHON": sys.executable, "PATH": f"{BIN}:{os.environ['PATH']}"}
    if config_file:
        env["RECO_CONFIG"] = str(config_file)
    jobs = {}
    try:
        for job in JOBS:
            # Synthetic lists say nothing of quality (popularity can win on them): publish past the gate.
            force = ["--force"] if job == "publish" else []
            jobs[job] = measure([str(BIN / "spark-submit"), "--master", "local[2]", "--driver-memory", "8g",
                                 str(REPO / "jobs" / f"{job}.py"), "--run-id", "scale", *force], env)
            print(size, job, jobs[job], flush=True)
        redis = floors(redis_server, work / size / "data" / "runs" / "scale", threads)
    finally:
        redis_server.stop()
    run = work / size / "data" / "runs" / "scale"
    train_report = json.loads((run / "train" / "report.json").read_text())
    publish_report = json.loads((run / "publish.json").read_text())
    return {"shape": {"users": shape.users, "movies": shape.movies, "ratings": len(ratings["user_id"])},
            "generate_s": round(generated_s, 1), "jobs": jobs,
            "total_s": round(sum(j["seconds"] for j in jobs.values()), 1),
            "peak_rss_mib": max(j["peak_rss_mib"] for j in jobs.values()),
            "fit_seconds": train_report["fit_seconds"], "params": train_report["params"]["implicit"],
            "publish": {"keys": publish_report["keys"], "keys_per_s": publish_report["keys_per_second"]},
            **redis}


def floors(redis_server: RedisServer, run: Path, threads: int) -> dict:
    """Same-run floors: implicit's ALS on the training split, numpy top-N, redis-benchmark, Redis memory."""
    import pyarrow.parquet as pq
    from scipy import sparse

    result = {}
    train = pq.read_table(run / "train" / "split" / "train.parquet").to_pandas()
    params = json.loads((run / "train" / "report.json").read_text())["params"]["implicit"]
    users, items = train["user_id"].to_numpy(), train["movie_id"].to_numpy()
    matrix = sparse.csr_matrix((train["rating"].to_numpy(np.float32), (users, items)))
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
            factors = (model.user_factors, model.item_factors)
    except ImportError:
        result["implicit"] = "not installed (pip install implicit)"
        factors = (np.random.default_rng(0).random((matrix.shape[0], params["rank"]), np.float32),
                   np.random.default_rng(1).random((matrix.shape[1], params["rank"]), np.float32))
    result["numpy_top_n_s"] = round(numpy_top_n(*factors, matrix, 50), 1)
    result["redis_set_pipelined_rps"] = redis_set_pipelined(redis_server.port)
    client = redis_server.client()
    version = client.get(rk.LIVE).decode()
    result["redis_used_memory_mib"] = round(client.info("memory")["used_memory"] / 2**20, 1)
    for kind in ("user", "similar", "movie"):
        keys = [k for _, k in zip(range(200), client.scan_iter(match=f"reco:v:{version}:{kind}:*", count=1000))]
        result[f"bytes_per_{kind}_key"] = round(float(np.mean([client.memory_usage(k) for k in keys]))) if keys else None
    return result


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


def redis_set_pipelined(port: int) -> float:
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "set", "-n", "1000000",
                          "-c", "8", "-d", "400", "-P", "16", "-q", "-r", "100000"],
                         capture_output=True, text=True, timeout=300).stdout
    return float(re.findall(r"([\d.]+) requests per second", out)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("SCALE", "0.1m,1m"),
                        help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--config", type=Path, help="RECO_CONFIG for the jobs (default conf/local.yaml)")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    results = {size: run_size(size, work, args.config, threads=2) for size in sizes}
    base = results[sizes[0]]
    rows = []
    for size, r in results.items():
        growth = r["shape"]["ratings"] / base["shape"]["ratings"]
        mllib_fit = r["fit_seconds"]["eval_implicit_s"]
        rows.append((size, f"{r['shape']['ratings']:,}", *(f"{r['jobs'][j]['seconds']:.0f}" for j in JOBS),
                     f"{r['total_s']:.0f}", f"{r['peak_rss_mib'] / 1024:.1f}",
                     f"{r['total_s'] / base['total_s']:.1f}x at {growth:.0f}x",
                     f"{mllib_fit / r['implicit_cholesky_s']:.1f}" if "implicit_cholesky_s" in r else "",
                     f"{mllib_fit / r['implicit_cg_s']:.1f}" if "implicit_cg_s" in r else "",
                     f"{r['publish']['keys_per_s'] / r['redis_set_pipelined_rps']:.3f}"))
    header = ("size", "ratings", *(f"{j} s" for j in JOBS), "total s", "peak RSS GiB", "growth",
              "MLlib fit / implicit Cholesky", "MLlib fit / implicit CG", "publish / redis-benchmark SET")
    write("scale", {"sizes": results}, rows, header,
          "Synthetic MovieLens-shaped data (benchmarks/synthetic_movielens.py), conf/local.yaml unless --config; "
          "each job a spark-submit on local[2]. MLlib fit: the eval implicit model on the 75% training split; "
          "implicit: the same split and settings, 2 threads. Command: make bench-scale SCALE=" + ",".join(sizes))


if __name__ == "__main__":
    main()
