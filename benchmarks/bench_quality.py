"""Quality benchmark: our models on the GUIDE protocol (ML-100K, per-user 75/25 split, k = 10) over three
split seeds, beside the published reference table (Microsoft Recommenders), then implicit ALS variants that
each change a few settings, and the diversity curve: NDCG@10 and intra-list diversity (1 - the mean genre
Jaccard similarity of a list's pairs) of the service's re-ranking (serving/lists.py) of each person's top 50 at
several `diversity` settings; the cold-movie protocol: 10% of the movies held out of training entirely; for
the users who rated held-out movies in their test part, the held-out movies ranked by their ALS vector against
factors mapped from content (what new slots use), by their content profile, by popularity by genre (each
genre's training ratings, no held-out movie's own) and at random (`cold_movies`); and whether blending content
into ALS neighbour lists helps (`neighbour_blends`). Parameters: the defaults of conf/settings.py. Writes
benchmarks/results/quality.json and quality.md.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from benchmarks.report import done_with, scratch_folder, write
from conf.settings import load_config

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


DIVERSITY = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def diversity_curve(spark, model, train, test, genres: dict[int, list[str]], k: int, top: int = 50) -> dict:
    """Per `diversity` setting: NDCG@10 and mean intra-list diversity of each test user's top `top`, re-ranked
    as the service does (serving/lists.py's diversify) and cut to k."""
    from jobs.lib.evaluation.metrics import score_lists
    from jobs.lib.model.scoring import als_top_n
    from serving.lists import diversify, intra_list_diversity

    lists: dict[int, list[dict]] = {}
    for row in als_top_n(model, train, top, users=test).orderBy("user_id", "rank").collect():
        lists.setdefault(row["user_id"], []).append({"movie_id": row["movie_id"],
                                                     "genres": genres.get(row["movie_id"])})
    curve = {}
    for setting in DIVERSITY:
        shown = {user: diversify(items, k, setting) for user, items in lists.items()}
        recs = spark.createDataFrame([(user, rank + 1, item["movie_id"]) for user, items in shown.items()
                                      for rank, item in enumerate(items)], "user_id int, rank int, movie_id int")
        scores = score_lists(recs, test, k)
        curve[str(setting)] = {"ndcg@10": scores["ndcg@10"], "intra_list_diversity": statistics.mean(
            intra_list_diversity(items) for items in shown.values())}
    return curve


# Content weightings (genre, decade, year, title words) and mapping penalties the cold-movie protocol compares;
# the shipped ones are conf's (content.*_weight, content.factor_reg).
CONTENT_VARIANTS = {"genres only": (1.0, 0.0, 0.0, 0.0), "genres + decade": (1.0, 0.5, 0.0, 0.0),
                    "genres + decade + year": (1.0, 0.5, 0.5, 0.0),
                    "genres + decade + year + title words": (1.0, 0.5, 0.5, 0.5)}
FACTOR_REGS = (1.0, 10.0, 100.0)
BLENDS = (1.0, 0.9, 0.7, 0.5, 0.0)  # weight of ALS in a neighbour list's score; the rest content's


def cold_movies(spark, config, train, test, movies, seed: int, k: int) -> dict:
    """The cold-movie protocol on one split: NDCG@10 and recall@10 over the held-out movies, ranked for each user
    by (a) their ALS vector against factors mapped from content (jobs/lib/model/content.py, what the service's
    new slots use), (b) their content profile (the sum of the content vectors of what they rated 4 or more),
    (c) popularity by genre, (d) random order; and, for reference, (e) the held-out movies' own number of
    training ratings, known only after the fact."""
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import functions as F

    from jobs.lib.evaluation.metrics import score_lists
    from jobs.lib.model.als import fit_implicit
    from jobs.lib.model.content import content_vectors, factors_from_content
    from jobs.lib.model.scoring import factors_of

    rng = np.random.default_rng(seed)
    catalogue = movies.select("movie_id", "genres").toPandas()
    held = set(rng.choice(catalogue.movie_id.to_numpy(), len(catalogue) // 10, replace=False).tolist())
    kept = train.where(~F.col("movie_id").isin(sorted(held)))
    train_pd = kept.select("user_id", "movie_id", "rating").toPandas()
    test_pd = test.select("user_id", "movie_id").toPandas()
    truth_pd = test_pd[test_pd.movie_id.isin(held)]
    users = sorted(set(truth_pd.user_id) & set(train_pd.user_id))
    truth = spark.createDataFrame(truth_pd[truth_pd.user_id.isin(users)])
    held_ids = np.array(sorted(held))
    liked = train_pd[train_pd.rating >= 4].groupby("user_id").movie_id.apply(list).to_dict()
    model = fit_implicit(kept, config.als.implicit, config.als)
    person = factors_of(pa.Table.from_pandas(model.userFactors.toPandas()))
    items = factors_of(pa.Table.from_pandas(model.itemFactors.toPandas()))

    def judged(ranked: dict[int, list[int]]) -> dict:
        recs = spark.createDataFrame([(u, r + 1, int(m)) for u, ms in ranked.items() for r, m in enumerate(ms[:k])],
                                     "user_id int, rank int, movie_id int")
        scores = score_lists(recs, truth, k)
        return {"ndcg@10": scores["ndcg@10"], "recall@10": scores["recall@10"]}

    def best(scores: np.ndarray, among: np.ndarray) -> list[int]:
        return among[np.lexsort((among, -scores))[:k]].tolist()

    results = {"random": judged({u: rng.permutation(held_ids)[:k].tolist() for u in users})}
    per_genre = train_pd.merge(catalogue, on="movie_id").explode("genres").groupby("genres").size().to_dict()
    genre_of = dict(zip(catalogue.movie_id, catalogue.genres))
    by_genre = sorted(held_ids.tolist(), key=lambda m: (-max((per_genre.get(g, 0) for g in genre_of[m]),
                                                               default=0), m))
    results["popularity by genre"] = judged({u: by_genre[:k] for u in users})
    rated = train.where(F.col("movie_id").isin(sorted(held))).groupBy("movie_id").count().toPandas()
    ratings_of = dict(zip(rated.movie_id, rated["count"]))
    after_the_fact = sorted(held_ids.tolist(), key=lambda m: (-ratings_of.get(m, 0), m))
    results["(their own number of ratings, known only after the fact)"] = judged({u: after_the_fact for u in users})
    shipped = (config.content.genre_weight, config.content.decade_weight, config.content.year_weight,
               config.content.title_weight)
    weightings = {"shipped weights": shipped, **{n: w for n, w in CONTENT_VARIANTS.items() if w != shipped}}
    for name, (genre, decade, year, title) in weightings.items():
        ids, vectors = content_vectors(movies, config.content.model_copy(
            update={"genre_weight": genre, "decade_weight": decade, "year_weight": year, "title_weight": title}))
        # The rated movies and the held-out ones: what else ALS lacks (all its ratings in a test part) is no
        # candidate here.
        rows = np.isin(ids, held_ids) | np.isin(ids, items.ids)
        regs = FACTOR_REGS if name == "shipped weights" else (config.content.factor_reg,)
        for reg in regs:
            mapped = factors_from_content(ids[rows], vectors[rows], items, reg)
            ranked = {u: best(mapped.matrix @ person.matrix[np.searchsorted(person.ids, u)], mapped.ids)
                      for u in users}
            results[f"ALS vector x factors from content ({name}, reg {reg:g})"] = judged(ranked)
        if name == "shipped weights":
            row_of = {int(m): i for i, m in enumerate(ids)}
            among = vectors[[row_of[m] for m in held_ids]]
            ranked = {}
            for user in users:
                theirs = [row_of[m] for m in liked.get(user, ()) if m in row_of]
                ranked[user] = best(among @ vectors[theirs].sum(axis=0), held_ids) if theirs else by_genre[:k]
            results["content profile (shipped weights)"] = judged(ranked)
    return {"held_out_movies": len(held), "users": len(users), "results": results}


def neighbour_blends(spark, config, model, train, test, movies, k: int) -> dict:
    """Do content neighbours help movies ALS knows? Each person's 3 latest training ratings of 4 or more are
    seeds; every movie scores its summed similarity to them, BLENDS of ALS cosine and content cosine; NDCG@10 of
    the best movies they did not rate in training, on their test part."""
    import numpy as np
    import pyarrow as pa

    from jobs.lib.evaluation.metrics import score_lists
    from jobs.lib.model.content import content_vectors
    from jobs.lib.model.scoring import _unit_rows, factors_of

    items = factors_of(pa.Table.from_pandas(model.itemFactors.toPandas()))
    ids, vectors = content_vectors(movies, config.content)
    als = _unit_rows(items.matrix)
    content = vectors[np.searchsorted(ids, items.ids)]
    train_pd = train.select("user_id", "movie_id", "rating", "ts").toPandas()
    seen = train_pd.groupby("user_id").movie_id.apply(set).to_dict()
    seeds = train_pd[train_pd.rating >= 4].sort_values("ts", kind="stable").groupby("user_id").tail(3) \
        .groupby("user_id").movie_id.apply(list).to_dict()
    truth = test.select("user_id", "movie_id")
    results = {}
    for blend in BLENDS:
        ranked = {}
        for user, movies_liked in seeds.items():
            rows = np.searchsorted(items.ids, movies_liked)
            scores = blend * (als @ als[rows].T).sum(axis=1) + (1 - blend) * (content @ content[rows].T).sum(axis=1)
            order = items.ids[np.argsort(-scores, kind="stable")]
            ranked[user] = [int(m) for m in order[:k + len(seen[user])] if m not in seen[user]][:k]
        recs = spark.createDataFrame([(u, r + 1, m) for u, ms in ranked.items() for r, m in enumerate(ms)],
                                     "user_id int, rank int, movie_id int")
        results[str(blend)] = score_lists(recs, truth, k)["ndcg@10"]
    return results


def evaluate_seed(spark, config, ratings, seed: int, genres: dict[int, list[str]], movies) -> dict:
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
    explicit = ExplicitModel.fit(train, config.als, (1.0, 5.0), implicit_model=implicit)
    explicit_s = time.perf_counter() - started
    models, _ = evaluate_models(train, test, implicit, explicit, k)  # the evaluate job's own steps
    curve = diversity_curve(spark, implicit, train, test, genres, k)
    cold = cold_movies(spark, config, train, test, movies, seed, k)
    blends = neighbour_blends(spark, config, implicit, train, test, movies, k)
    variants = {}
    for label, changes in VARIANTS:
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


def main() -> None:
    from jobs import clean, ingest
    from jobs.lib.runtime.run_layout import run_paths
    from jobs.lib.runtime.spark import spark_session

    if not os.environ.get("RECO_MOVIELENS_DIR"):
        raise SystemExit("set RECO_MOVIELENS_DIR to a MovieLens 100K folder (make bench-quality does)")
    work = scratch_folder("bench-quality")
    # MovieLens alone: quality is measured on the published data, not on whatever events a Redis holds.
    config = load_config(REPO / "conf" / "local.yaml", overrides={"data.root": str(work), "events.archive": False})
    spark = spark_session(config, "bench-quality")
    ingest.run(config, "quality", spark=spark)
    clean.run(config, "quality", spark=spark)
    ratings = spark.read.parquet(run_paths(config, "quality").clean_ratings).cache()
    movies = spark.read.parquet(run_paths(config, "quality").clean_movies).cache()
    genres = {row["movie_id"]: list(row["genres"] or ()) for row in movies.select("movie_id", "genres").collect()}
    runs = []
    for seed in SEEDS:
        runs.append(evaluate_seed(spark, config, ratings, seed, genres, movies))
        print(seed, runs[-1]["als"]["ndcg@10"], runs[-1]["explicit"], flush=True)
    spark.stop()

    def stat(path):
        return summary([eval_path(r, path) for r in runs])

    def eval_path(run, path):
        node = run
        for part in path.split("/"):
            node = node[part]
        return node

    def cell(path, digits=3):
        mean, spread = stat(path)
        return f"{mean:.{digits}f} ± {spread:.{digits}f}"

    implicit_time = statistics.mean(r["implicit_fit_s"] for r in runs)
    explicit_time = statistics.mean(r["explicit_fit_s"] for r in runs)
    p = config.als.implicit
    e = config.als.explicit
    ours = [
        (f"**Spark ALS implicit (ours: rank {p.rank}, reg {p.reg_param}, alpha {p.alpha}, {p.confidence}"
         f"{f', activity exponent {p.user_activity_exponent}' if p.user_activity_exponent else ''}"
         f"{f', popularity exponent {p.item_popularity_exponent}' if p.item_popularity_exponent else ''}"
         f", {p.max_iter} it.)**", cell("als/ndcg@10"), cell("als/precision@10"), cell("als/recall@10"), "", "",
         f"{implicit_time:.0f} s"),
        (f"**Spark ALS explicit + biases (ours: rank {e.rank}, reg {e.reg_param}, bias shrinkage {e.bias_reg}"
         f"{', implicit score blended in' if e.implicit_feature else ''})**",
         "", "", "", cell("explicit/rmse"), cell("explicit/mae"), f"{explicit_time:.0f} s"),
        ("popularity baseline (ours)", cell("popularity/ndcg@10"), cell("popularity/precision@10"),
         cell("popularity/recall@10"), "", "", ""),
    ]
    reference = [(name, f"{n:.3f}", f"{pr:.3f}", f"{r:.3f}", "" if rm is None else f"{rm:.3f}",
                  "" if ma is None else f"{ma:.3f}", "(published)") for name, n, pr, r, rm, ma in REFERENCE]
    targets = {"NDCG@10 >= 0.49": stat("als/ndcg@10")[0] >= 0.49,
               "Precision@10 >= 0.42": stat("als/precision@10")[0] >= 0.42,
               "RMSE <= 0.92": stat("explicit/rmse")[0] <= 0.92, "MAE <= 0.72": stat("explicit/mae")[0] <= 0.72}
    variant_rows = [("shipped (conf/local.yaml)", cell("als/ndcg@10"), cell("als/precision@10"))]
    for label, _ in VARIANTS:
        variant_rows.append((label, *(f"{m:.3f} ± {s:.3f}" for m, s in (
            summary([r["variants"][label][metric] for r in runs]) for metric in ("ndcg@10", "precision@10")))))
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
    curve_table = "\n".join(f"| {' | '.join(row)} |" for row in [
        ("diversity", "NDCG@10", "intra-list diversity"), ("---", "---", "---"), *curve_rows])
    cold_names = list(runs[0]["cold_movies"]["results"])
    payload["cold_movies"] = {name: {metric: summary([r["cold_movies"]["results"][name][metric] for r in runs])[0]
                                     for metric in ("ndcg@10", "recall@10")} for name in cold_names}
    genre_baseline = payload["cold_movies"]["popularity by genre"]["ndcg@10"]
    cold_table = "\n".join(f"| {' | '.join(row)} |" for row in [
        ("held-out movies ranked by", "NDCG@10", "Recall@10", "x popularity by genre"), ("---",) * 4,
        *[(name, *(f"{m:.3f} ± {sd:.3f}" for m, sd in (
            summary([r["cold_movies"]["results"][name][metric] for r in runs]) for metric in ("ndcg@10", "recall@10"))),
           f"{payload['cold_movies'][name]['ndcg@10'] / genre_baseline:.2f}") for name in cold_names]])
    payload["neighbour_blends"] = {blend: summary([r["neighbour_blends"][blend] for r in runs])[0]
                                   for blend in map(str, BLENDS)}
    blend_table = "\n".join(f"| {' | '.join(row)} |" for row in [
        ("weight of ALS (the rest content)", "NDCG@10"), ("---", "---"),
        *[(blend, "{:.3f} ± {:.3f}".format(*summary([r["neighbour_blends"][blend] for r in runs])))
          for blend in map(str, BLENDS)]])
    variants_table = "\n".join(f"| {' | '.join(row)} |" for row in [
        ("implicit ALS variant (settings changed from the shipped ones)", "NDCG@10", "Precision@10"),
        ("---", "---", "---"), *variant_rows])
    write("quality", payload, ours + reference,
          ("model", "NDCG@10", "Precision@10", "Recall@10", "RMSE", "MAE", "train time (2 cores)"),
          f"GUIDE protocol on ML-100K, mean ± standard deviation over split seeds {list(SEEDS)}. Targets: "
          + ", ".join(f"{name} {'met' if met else 'NOT met'}" for name, met in targets.items())
          + ". Command: make bench-quality\n\n"
          "What tuning inside MLlib reaches, on the same test splits (the README lists the attempts beyond MLlib):"
          f"\n\n{variants_table}\n\nThe `diversity` parameter (re-ranking of each person's top 50 by maximal marginal "
          "relevance over genres, serving/lists.py; intra-list diversity = 1 - mean genre Jaccard similarity of a "
          f"list's pairs):\n\n{curve_table}\n\nCold movies: {runs[0]['cold_movies']['held_out_movies']} movies "
          f"(10%) held out of training entirely, {runs[0]['cold_movies']['users']} users with held-out movies in "
          "their test part (first seed); the held-out movies ranked for each (goal: content at least 2x the genre "
          f"baseline):\n\n{cold_table}\n\nNeighbour lists of movies ALS knows, ALS and content blended: each "
          "person's 3 latest training ratings of 4 or more as seeds, the movies most similar to them (summed "
          f"cosine) scored on their test part:\n\n{blend_table}")
    done_with(work)


if __name__ == "__main__":
    main()
