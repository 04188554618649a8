"""Evaluation protocols beyond the GUIDE's (jobs/lib/evaluation/metrics.py), which measurement chose product
settings by: the diversity curve of the service's re-ranking, the cold-movie protocol (how new movies are placed:
content.* weights, content.factor_reg) and content blended into neighbour lists. `make bench-quality` runs them
over three split seeds; tests and the pipeline can call them too."""
from __future__ import annotations

import statistics

from schemas.diversity import diversify, intra_list_diversity

DIVERSITY = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def diversity_curve(spark, model, train, test, genres: dict[int, list[str]], k: int, top: int = 50) -> dict:
    """Per `diversity` setting: NDCG@10 and mean intra-list diversity of each test user's top `top`, re-ranked
    as the service does (serving/lists.py's diversify) and cut to k."""
    from jobs.lib.evaluation.metrics import score_lists
    from jobs.lib.model.scoring import als_top_n

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
# Content weightings measured beside the shipped one (conf/settings.py ContentSettings); each names the weights it
# sets, the rest as shipped.
CONTENT_VARIANTS = {
    "genres only": {"genre_weight": 1.0, "decade_weight": 0.0, "year_weight": 0.0, "title_weight": 0.0,
                    "tag_weight": 0.0},
    "genres + decade": {"genre_weight": 1.0, "decade_weight": 0.5, "year_weight": 0.0, "title_weight": 0.0,
                        "tag_weight": 0.0},
    "genres + decade + year + title words": {"genre_weight": 1.0, "decade_weight": 0.5, "year_weight": 0.5,
                                             "title_weight": 0.5, "tag_weight": 0.0},
}
TAG_WEIGHTS = (0.25, 0.5, 2.0)  # beside the shipped tag weight, where the release has tags
BLOCKS = {"genres": "genre_weight", "decade": "decade_weight", "year": "year_weight", "title words": "title_weight",
          "tags": "tag_weight"}
PRIOR_WEIGHTS = (0.25, 0.5, 1.0)  # of the popularity predicted from content, beside the person's ALS score
FACTOR_REGS = (1.0, 10.0, 100.0)
BLENDS = (1.0, 0.9, 0.7, 0.5, 0.0)  # weight of ALS in a neighbour list's score; the rest content's
# The mapping trained to rank: Adam on the BPR loss, from the ridge's mapping (the best of the settings tried).
RANK_EPOCHS, RANK_LEARNING_RATE, RANK_PENALTY, RANK_BATCH = 10, 0.01, 1e-4, 2048


def rank_trained_mapping(ids, vectors, items, person, pairs, reg: float, seed: int):
    """Factors for the movies ALS does not know, from a content-to-factor mapping trained to rank rather than to
    regress factors: it starts from the ridge's (jobs/lib/model/content.py) and follows the BPR loss of
    (person's ALS vector . mapped factors), each training pair (`pairs`: user_id, movie_id) against a rated movie
    drawn at random. Measured in the cold-movie protocol, not shipped."""
    import numpy as np

    from jobs.lib.model.content import content_mapping
    from jobs.lib.model.scoring import Factors

    known = np.isin(ids, items.ids)
    ridge = content_mapping(ids, vectors, items, reg)
    rated, mapping = vectors[known] - ridge.content_mean, ridge.mapping.copy()
    users = person.matrix[np.searchsorted(person.ids, pairs.user_id.to_numpy())].astype(np.float32)
    liked = np.searchsorted(ids[known], pairs.movie_id.to_numpy())  # rows of `rated`
    rng = np.random.default_rng(seed)
    moment, scale = np.zeros_like(mapping), np.zeros_like(mapping)
    step = 0
    for _ in range(RANK_EPOCHS):
        for batch in np.array_split(rng.permutation(len(liked)), max(1, len(liked) // RANK_BATCH)):
            apart = rated[liked[batch]] - rated[rng.integers(0, len(rated), len(batch))]
            margin = np.einsum("br,br->b", apart @ mapping, users[batch])
            pull = -1.0 / (1.0 + np.exp(margin))  # d(-log sigmoid(margin)) / d margin
            gradient = apart.T @ (pull[:, None] * users[batch]) / len(batch) + RANK_PENALTY * mapping
            step += 1
            moment = 0.9 * moment + 0.1 * gradient
            scale = 0.999 * scale + 0.001 * gradient**2
            mapping -= RANK_LEARNING_RATE * (moment / (1 - 0.9**step)) / (np.sqrt(scale / (1 - 0.999**step)) + 1e-8)
    return Factors(ids[~known], ridge._replace(mapping=mapping).apply(vectors[~known]))


def cold_movies(spark, config, train, test, movies, seed: int, k: int, tags=None) -> dict:
    """The cold-movie protocol on one split: NDCG@10 and recall@10 over the held-out movies, ranked for each user
    by (a) their ALS vector against factors mapped from content (jobs/lib/model/content.py, what the service's
    new slots use), with each content block left out in turn (what it adds), other weightings and the mapping
    trained to rank (`rank_trained_mapping`), (b) the same plus a popularity prior predicted from content (ridge of
    log ratings on the content vectors of the rated movies), (c) their content profile (the sum of the content
    vectors of what they rated 4 or more), (d) popularity by genre, (e) random order; and, for reference, (f) the
    held-out movies' own number of training ratings, known only after the fact. `tags`: the release's clean tags
    (people per tag and movie), if any."""
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import functions as F

    from jobs.lib.evaluation.metrics import score_lists
    from jobs.lib.model.als import fit_implicit
    from jobs.lib.model.content import content_vectors, factors_from_content
    from jobs.lib.model.scoring import Factors, factors_of

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
    counts = train_pd.movie_id.value_counts()

    def judged(ranked: dict[int, list[int]]) -> dict:
        recs = spark.createDataFrame([(u, r + 1, int(m)) for u, ms in ranked.items() for r, m in enumerate(ms[:k])],
                                     "user_id int, rank int, movie_id int")
        scores = score_lists(recs, truth, k)
        return {"ndcg@10": scores["ndcg@10"], "recall@10": scores["recall@10"]}

    def best(scores: np.ndarray, among: np.ndarray) -> list[int]:
        return among[np.lexsort((among, -scores))[:k]].tolist()

    def standard(scores: np.ndarray) -> np.ndarray:
        return (scores - scores.mean()) / (scores.std() or 1.0)

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
    shipped = {name: getattr(config.content, name) for name in BLOCKS.values()}
    if tags is None:
        shipped["tag_weight"] = 0.0  # nothing to weigh
    weightings = {"shipped weights": shipped}
    for block, name in BLOCKS.items():
        if shipped[name] > 0:
            weightings[f"shipped weights without {block}"] = {**shipped, name: 0.0}
    weightings.update({variant: {**shipped, **changes} for variant, changes in CONTENT_VARIANTS.items()})
    if tags is not None:
        weightings.update({f"shipped weights, tags at {w:g}": {**shipped, "tag_weight": w} for w in TAG_WEIGHTS})
    for name, weights in weightings.items():
        ids, vectors = content_vectors(movies, config.content.model_copy(update=weights), tags)
        # The rated movies and the held-out ones: what else ALS lacks (all its ratings in a test part) is no
        # candidate here.
        rows = np.isin(ids, held_ids) | np.isin(ids, items.ids)
        regs = sorted({*FACTOR_REGS, config.content.factor_reg}) if name == "shipped weights" \
            else (config.content.factor_reg,)
        mapped_at = {}
        for reg in regs:
            mapped_at[reg] = mapped = factors_from_content(ids[rows], vectors[rows], items, reg)
            ranked = {u: best(mapped.matrix @ person.matrix[np.searchsorted(person.ids, u)], mapped.ids)
                      for u in users}
            results[f"ALS vector x factors from content ({name}, reg {reg:g})"] = judged(ranked)
        if name != "shipped weights":
            continue
        mapped = mapped_at[config.content.factor_reg]
        rated_counts = counts.reindex(items.ids, fill_value=0).to_numpy(np.float32)
        # A popularity prior from content: how many people rated movies like it (log), by ridge regression.
        prior = factors_from_content(ids[rows], vectors[rows], Factors(items.ids, np.log1p(rated_counts)[:, None]),
                                     config.content.factor_reg)  # the same movies as `mapped`, in its order
        prior_scores = standard(prior.matrix[:, 0])
        results["popularity predicted from content"] = judged({u: best(prior_scores, prior.ids) for u in users})
        # The regression weighted toward the movies many people rated (their factors are the better estimated).
        for power in (0.5, 1.0):
            weighted = factors_from_content(ids[rows], vectors[rows], items, config.content.factor_reg,
                                            weights=rated_counts ** power)
            ranked = {u: best(weighted.matrix @ person.matrix[np.searchsorted(person.ids, u)], weighted.ids)
                      for u in users}
            results[f"ALS vector x factors from content, mapping weighted by ratings^{power:g}"] = judged(ranked)
        trained = rank_trained_mapping(ids[rows], vectors[rows], items, person, train_pd, config.content.factor_reg,
                                       seed)
        ranked = {u: best(trained.matrix @ person.matrix[np.searchsorted(person.ids, u)], trained.ids) for u in users}
        results["ALS vector x factors from content, mapping trained to rank (BPR, from the ridge's)"] = judged(ranked)
        for weight in PRIOR_WEIGHTS:
            ranked = {u: best(standard(mapped.matrix @ person.matrix[np.searchsorted(person.ids, u)])
                              + weight * prior_scores, mapped.ids) for u in users}
            results[f"ALS vector x factors from content + {weight:g} x predicted popularity"] = judged(ranked)
        row_of = {int(m): i for i, m in enumerate(ids)}
        among = vectors[[row_of[m] for m in held_ids]]
        ranked = {}
        for user in users:
            theirs = [row_of[m] for m in liked.get(user, ()) if m in row_of]
            ranked[user] = best(among @ vectors[theirs].sum(axis=0), held_ids) if theirs else by_genre[:k]
        results["content profile (shipped weights)"] = judged(ranked)
    return {"held_out_movies": len(held), "users": len(users), "results": results}


def neighbour_blends(spark, config, model, train, test, movies, k: int, tags=None) -> dict:
    """Do content neighbours help movies ALS knows? Each person's 3 latest training ratings of 4 or more are
    seeds; every movie scores its summed similarity to them, BLENDS of ALS cosine and content cosine; NDCG@10 of
    the best movies they did not rate in training, on their test part."""
    import numpy as np
    import pyarrow as pa

    from jobs.lib.evaluation.metrics import score_lists
    from jobs.lib.model.content import content_vectors
    from jobs.lib.model.scoring import _unit_rows, factors_of

    items = factors_of(pa.Table.from_pandas(model.itemFactors.toPandas()))
    ids, vectors = content_vectors(movies, config.content, tags)
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
