"""Quality benchmark: our models on the GUIDE protocol (ML-100K, per-user 75/25 split, k = 10) over three
split seeds, beside the published reference table (Microsoft Recommenders), then implicit ALS variants that
each change a few settings, and the diversity curve: NDCG@10 and intra-list diversity (1 - the mean genre
Jaccard similarity of a list's pairs) of the service's re-ranking (serving/lists.py) of each person's top 50 at
several `diversity` settings; the cold-movie protocol: 10% of the movies held out of training entirely; for
the users who rated held-out movies in their test part, the held-out movies ranked by their ALS vector against
factors mapped from content (what new slots use), by their content profile, by popularity by genre (each
genre's training ratings, no held-out movie's own) and at random (`cold_movies`); and whether blending content
into ALS neighbour lists helps (`neighbour_blends`). Then, where RECO_TAGGED_MOVIELENS_DIR names one (make
bench-quality: ../shared/data/ml-latest-small-2016), a tagged CSV release through the same protocol and seeds
(models, cold movies with each content block left out in turn, tags included, and the blends). Parameters: the
defaults of conf/settings.py. Writes benchmarks/results/quality.json and quality.md.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from benchmarks.report import done_with, markdown_table, scratch_folder, write
from conf.settings import Config, load_config
from jobs.lib.evaluation.protocols import (
    BLENDS,
    DIVERSITY,
    cold_movies,
    diversity_curve,
    neighbour_blends,
)

REPO = Path(__file__).resolve().parent.parent
SEEDS = (42, 43, 44)
# Published figures on the same protocol (Microsoft Recommenders benchmark, ML-100K, k = 10), from GUIDE.md.
REFERENCE = [
    ("Spark ALS (explicit, defaults)", 0.044, 0.048, 0.018, 0.965, 0.753),
    ("Surprise SVD", 0.096, 0.091, 0.033, 0.939, 0.743),
    ("SAR", 0.382, 0.331, 0.176, None, None),
    ("NCF", 0.396, 0.347, 0.181, None, None),
    ("LightGCN", 0.420, 0.380, 0.144, None, None),
    ("BPR (Cornac)", 0.442, 0.388, 0.213, None, None),
    ("BiVAE", 0.475, 0.412, 0.219, None, None),
]
# What tuning inside MLlib reaches (issue 5 asks for this account while NDCG@10 >= 0.49 is not met):
# each row changes the listed settings of conf/local.yaml's implicit ALS and is scored on the same test splits.
# Confidence transforms get an alpha that keeps ML-100K's mean confidence (mean rating 3.53, mean log1p 1.47).
VARIANTS = [
    ("MLlib defaults: rank 10, reg 0.1, alpha 1, 10 it., no exponents",
     {"rank": 10, "reg_param": 0.1, "alpha": 1.0, "max_iter": 10, "item_popularity_exponent": 0.0}),
    ("popularity exponent 0 (shipped before tuning it)", {"item_popularity_exponent": 0.0}),
    ("popularity exponent 0.5", {"item_popularity_exponent": 0.5}),
    ("activity exponent 0.5", {"user_activity_exponent": 0.5}),
    ("rank 256", {"rank": 256}),
    ("confidence log(1 + r), alpha 2.4", {"confidence": "log", "alpha": 2.4}),
    ("confidence binary, alpha 3.5", {"confidence": "binary", "alpha": 3.5}),
    ("only ratings >= 3.5 are positives", {"confidence": "threshold"}),
]


def evaluate_seed(spark, config, ratings, seed: int, genres: dict[int, list[str]], movies, scale, tags=None,
                  full: bool = True) -> dict:
    """One split seed. `full`: the implicit variants and the diversity curve too (the first release only)."""
    from jobs.lib.evaluation.metrics import evaluate_models, score_lists
    from jobs.lib.model.als import ExplicitModel, fit_implicit
    from jobs.lib.model.scoring import als_top_n
    from jobs.lib.model.splits import stratified_split

    k = config.evaluate.k
    train, test = stratified_split(ratings, config.split.train_ratio, seed)
    train, test = train.cache(), test.cache()
    started = time.perf_counter()
    implicit = fit_implicit(train, config.als.implicit, config.als)
    implicit.userFactors.count()
    implicit_s = time.perf_counter() - started
    started = time.perf_counter()
    explicit = ExplicitModel.fit(train, config.als, scale, implicit_model=implicit)
    explicit_s = time.perf_counter() - started
    models, _ = evaluate_models(train, test, implicit, explicit, k)  # the evaluate job's own steps
    curve = diversity_curve(spark, implicit, train, test, genres, k) if full else {}
    cold = cold_movies(spark, config, train, test, movies, seed, k, tags)
    blends = neighbour_blends(spark, config, implicit, train, test, movies, k, tags)
    variants = {}
    for label, changes in VARIANTS if full else ():
        model = fit_implicit(train, config.als.implicit.model_copy(update=changes), config.als)
        variants[label] = score_lists(als_top_n(model, train, k, users=test), test, k)
    train.unpersist()
    test.unpersist()
    return {"seed": seed, "als": models["als"], "popularity": models["popularity"],
            "explicit": {name: models["als"][name] for name in ("rmse", "mae")},
            "implicit_fit_s": round(implicit_s, 1), "explicit_fit_s": round(explicit_s, 1),
            "variants": variants, "diversity": curve, "cold_movies": cold,
            "neighbour_blends": blends}


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def measure_release(folder: str, full: bool) -> tuple[str, Config, list[dict]]:
    """(release name, the config used, one result per seed) of the MovieLens folder."""
    from jobs import clean, ingest
    from jobs.lib.runtime.run_layout import run_paths
    from jobs.lib.runtime.spark import spark_session
    from schemas.movielens import DATASETS
    from schemas.storage import exists, read_json

    work = scratch_folder("bench-quality")
    # MovieLens alone: quality is measured on the published data, not on whatever events a Redis holds.
    config = load_config(REPO / "conf" / "local.yaml", overrides={
        "data.root": str(work), "events.archive": False, "data.movielens_dir": folder,
        "data.movielens_roots": [str(Path(folder).resolve().parent)]})
    spark = spark_session(config, "bench-quality")
    ingest.run(config, "quality", spark=spark)
    clean.run(config, "quality", spark=spark)
    paths = run_paths(config, "quality")
    release = read_json(paths.manifest)["dataset"]
    ratings = spark.read.parquet(paths.clean_ratings).cache()
    movies = spark.read.parquet(paths.clean_movies).cache()
    tags = spark.read.parquet(paths.clean_tags).cache() if exists(paths.clean_tags) else None
    genres = {row["movie_id"]: list(row["genres"] or ()) for row in movies.select("movie_id", "genres").collect()}
    runs = []
    for seed in SEEDS:
        runs.append(evaluate_seed(spark, config, ratings, seed, genres, movies, DATASETS[release].rating_scale, tags,
                                  full))
        print(release, seed, runs[-1]["als"]["ndcg@10"], runs[-1]["explicit"], flush=True)
    spark.stop()
    done_with(work)
    return release, config, runs


def at(run: dict, path: str):
    node = run
    for part in path.split("/"):
        node = node[part]
    return node


def cell(runs: list[dict], path: str, digits: int = 3) -> str:
    mean, spread = summary([at(r, path) for r in runs])
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def model_rows(runs: list[dict], config) -> list[tuple]:
    implicit_time = statistics.mean(r["implicit_fit_s"] for r in runs)
    explicit_time = statistics.mean(r["explicit_fit_s"] for r in runs)
    p, e = config.als.implicit, config.als.explicit
    return [
        (f"**Spark ALS implicit (ours: rank {p.rank}, reg {p.reg_param}, alpha {p.alpha}, {p.confidence}"
         f"{f', activity exponent {p.user_activity_exponent}' if p.user_activity_exponent else ''}"
         f"{f', popularity exponent {p.item_popularity_exponent}' if p.item_popularity_exponent else ''}"
         f", {p.max_iter} it.)**", cell(runs, "als/ndcg@10"), cell(runs, "als/precision@10"),
         cell(runs, "als/recall@10"), "", "", f"{implicit_time:.0f} s"),
        (f"**Spark ALS explicit + biases (ours: rank {e.rank}, reg {e.reg_param}, bias shrinkage {e.bias_reg}"
         f"{', implicit score blended in' if e.implicit_feature else ''})**",
         "", "", "", cell(runs, "explicit/rmse"), cell(runs, "explicit/mae"), f"{explicit_time:.0f} s"),
        ("popularity baseline (ours)", cell(runs, "popularity/ndcg@10"), cell(runs, "popularity/precision@10"),
         cell(runs, "popularity/recall@10"), "", "", ""),
    ]


def cold_and_blends(runs: list[dict]) -> tuple[dict, str, dict, str]:
    """(cold-movie means, their table, neighbour-blend means, their table)."""
    names = list(runs[0]["cold_movies"]["results"])
    cold = {name: {metric: summary([r["cold_movies"]["results"][name][metric] for r in runs])[0]
                   for metric in ("ndcg@10", "recall@10")} for name in names}
    baseline = cold["popularity by genre"]["ndcg@10"]
    cold_table = markdown_table(
        ("held-out movies ranked by", "NDCG@10", "Recall@10", "x popularity by genre"),
        [(name, cell(runs, f"cold_movies/results/{name}/ndcg@10"), cell(runs, f"cold_movies/results/{name}/recall@10"),
          f"{cold[name]['ndcg@10'] / baseline:.2f}") for name in names])
    blends = {blend: summary([r["neighbour_blends"][blend] for r in runs])[0] for blend in map(str, BLENDS)}
    blend_table = markdown_table(("weight of ALS (the rest content)", "NDCG@10"),
                                 [(blend, cell(runs, f"neighbour_blends/{blend}")) for blend in map(str, BLENDS)])
    return cold, cold_table, blends, blend_table


def main() -> None:
    if not os.environ.get("RECO_MOVIELENS_DIR"):
        raise SystemExit("set RECO_MOVIELENS_DIR to a MovieLens 100K folder (make bench-quality does)")
    _, config, runs = measure_release(os.environ["RECO_MOVIELENS_DIR"], full=True)
    # A tagged release beside it (make bench-quality: ../shared/data/ml-latest-small-2016 where it exists).
    tagged = os.environ.get("RECO_TAGGED_MOVIELENS_DIR")
    other = measure_release(tagged, full=False) if tagged else None

    def stat(path):
        return summary([at(r, path) for r in runs])

    reference = [(name, f"{n:.3f}", f"{pr:.3f}", f"{r:.3f}", "" if rm is None else f"{rm:.3f}",
                  "" if ma is None else f"{ma:.3f}", "(published)") for name, n, pr, r, rm, ma in REFERENCE]
    targets = {"NDCG@10 >= 0.49": stat("als/ndcg@10")[0] >= 0.49,
               "Precision@10 >= 0.42": stat("als/precision@10")[0] >= 0.42,
               "RMSE <= 0.92": stat("explicit/rmse")[0] <= 0.92, "MAE <= 0.72": stat("explicit/mae")[0] <= 0.72}
    variant_rows: list[tuple[str, ...]] = [
        ("shipped (conf/local.yaml)", cell(runs, "als/ndcg@10"), cell(runs, "als/precision@10"))]
    for label, _ in VARIANTS:
        variant_rows.append((label, *(f"{m:.3f} ± {s:.3f}" for m, s in (
            summary([r["variants"][label][metric] for r in runs]) for metric in ("ndcg@10", "precision@10")))))
    p, e = config.als.implicit, config.als.explicit
    payload = {"seeds": list(SEEDS), "runs": runs, "params": {"implicit": p.model_dump(), "explicit": e.model_dump()},
               "variants": dict(VARIANTS),
               "mean": {"ndcg@10": stat("als/ndcg@10")[0], "precision@10": stat("als/precision@10")[0],
                        "recall@10": stat("als/recall@10")[0], "map@10": stat("als/map@10")[0],
                        "rmse": stat("explicit/rmse")[0], "mae": stat("explicit/mae")[0]},
               "targets_met": targets}
    curve_rows = [(setting, *(f"{m:.3f} ± {s:.3f}" for m, s in (
        summary([r["diversity"][setting][metric] for r in runs]) for metric in ("ndcg@10", "intra_list_diversity"))))
        for setting in map(str, DIVERSITY)]
    payload["diversity"] = {setting: {metric: summary([r["diversity"][setting][metric] for r in runs])[0]
                                      for metric in ("ndcg@10", "intra_list_diversity")}
                            for setting in map(str, DIVERSITY)}
    curve_table = markdown_table(("diversity", "NDCG@10", "intra-list diversity"), curve_rows)
    payload["cold_movies"], cold_table, payload["neighbour_blends"], blend_table = cold_and_blends(runs)
    variants_table = markdown_table(("implicit ALS variant (settings changed from the shipped ones)", "NDCG@10",
                                     "Precision@10"), variant_rows)
    tagged_section = ""
    if other is not None:
        name, other_config, other_runs = other
        cold, other_cold_table, blends, other_blend_table = cold_and_blends(other_runs)
        payload["releases"] = {name: {
            "folder": tagged, "runs": other_runs, "cold_movies": cold, "neighbour_blends": blends,
            "mean": {metric: summary([at(r, path) for r in other_runs])[0] for metric, path in (
                ("ndcg@10", "als/ndcg@10"), ("popularity_ndcg@10", "popularity/ndcg@10"), ("mae", "explicit/mae"),
                ("rmse", "explicit/rmse"))}}}
        tagged_section = (
            f"\n\n## {name}: the tagged release ({tagged}, the same protocol and seeds)\n\n"
            + markdown_table(("model", "NDCG@10", "Precision@10", "Recall@10", "RMSE", "MAE", "train time (2 cores)"),
                             model_rows(other_runs, other_config))
            + f"\nCold movies: {other_runs[0]['cold_movies']['held_out_movies']} movies (10%) held out, "
            f"{other_runs[0]['cold_movies']['users']} users with held-out movies in their test part (first seed); "
            "content blocks genres, decade, year, title words and tags (people per tag as counts, TF-IDF), each "
            f"left out in turn to show what it adds:\n\n{other_cold_table}\nNeighbour lists, ALS and content "
            f"blended:\n\n{other_blend_table}")
    write("quality", payload, model_rows(runs, config) + reference,
          ("model", "NDCG@10", "Precision@10", "Recall@10", "RMSE", "MAE", "train time (2 cores)"),
          f"GUIDE protocol on ML-100K, mean ± standard deviation over split seeds {list(SEEDS)}. Targets: "
          + ", ".join(f"{name} {'met' if met else 'NOT met'}" for name, met in targets.items())
          + ". Command: make bench-quality\n\n"
          "What tuning inside MLlib reaches, on the same test splits (the README lists the attempts beyond MLlib):"
          f"\n\n{variants_table}\nThe `diversity` parameter (re-ranking of each person's top 50 by maximal marginal "
          "relevance over genres, serving/lists.py; intra-list diversity = 1 - mean genre Jaccard similarity of a "
          f"list's pairs):\n\n{curve_table}\nCold movies: {runs[0]['cold_movies']['held_out_movies']} movies "
          f"(10%) held out of training entirely, {runs[0]['cold_movies']['users']} users with held-out movies in "
          "their test part (first seed); the held-out movies ranked for each (goal: content at least 2x the genre "
          f"baseline):\n\n{cold_table}\nNeighbour lists of movies ALS knows, ALS and content blended: each "
          "person's 3 latest training ratings of 4 or more as seeds, the movies most similar to them (summed "
          f"cosine) scored on their test part:\n\n{blend_table}{tagged_section}")


if __name__ == "__main__":
    main()
