"""Content: a vector per catalogue movie from what the release says of it, rated or not, and the movies nearest to
each by those vectors. ALS knows a movie only once people rated it; content lets a new movie have neighbours
(and be found) from its first day.

A movie's vector joins up to six blocks, each scaled to unit length and then weighted (`content.*_weight`; a
block weighted 0, or that the release does not have, is not built; title words off by default: on ML-100K they
add nothing to the cold-movie protocol's NDCG@10, `make bench-quality`):
- genres, one column each (binary);
- the decade of its year (binary), so that a 1950s western sits nearer the other 1950s westerns;
- the year itself (binary): how many people saw a movie follows its year, which a decade blurs (ML-100K's films
  of 1998, the year its ratings end, have a quarter of the ratings of 1997's);
- title words, TF-IDF (Spark ML's RegexTokenizer, StopWordsRemover, CountVectorizer with minDF 2, IDF): a word
  shared by a few titles (a series, a character) counts, a word of one title alone cannot;
- user tags (clean's (movie, tag, people)), TF-IDF with the number of people who applied a tag as its count;
- the tag genome's relevance scores, centred on each tag's mean (every movie is somewhat "funny"; what sets two
  movies apart is how far they sit from the mean).
Text blocks keep their `content.vocabulary` most frequent terms, so the vectors stay dense-sized (the 32M shape:
87k movies x about 2,200 columns, 0.8 GB of float32) and are scored with BLAS, as ALS factors are.
The joined vector is scaled to unit length: the dot product of two movies is their cosine similarity.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.ml import Pipeline
from pyspark.ml.feature import IDF, CountVectorizer, RegexTokenizer, StopWordsRemover
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import sparse

from conf.settings import ContentSettings
from jobs.lib.model.scoring import (
    Factors,
    _schema,
    _unit_rows,
    neighbors_on_driver,
    top_n_on_driver,
)


def content_vectors(movies: DataFrame, settings: ContentSettings, tags: DataFrame | None = None,
                    genome: DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(movie ids ascending, one unit-length float32 row per movie) for every movie of the catalogue."""
    prepared = movies.select(
        "movie_id", F.coalesce("title", F.lit("")).alias("title"),
        F.coalesce("genres", F.array().cast("array<string>")).alias("genres"),
        F.when(F.col("year").isNotNull(), F.array(F.concat(F.lit("d"), (F.floor(F.col("year") / 10) * 10)
                                                            .cast("int").cast("string"))))
        .otherwise(F.array().cast("array<string>")).alias("decade"),
        F.when(F.col("year").isNotNull(), F.array(F.concat(F.lit("y"), F.col("year").cast("int").cast("string"))))
        .otherwise(F.array().cast("array<string>")).alias("year"))
    if tags is not None and settings.tag_weight > 0:
        per_movie = tags.groupBy("movie_id").agg(
            F.flatten(F.collect_list(F.array_repeat("tag", F.col("people").cast("int")))).alias("tags"))
        prepared = prepared.join(per_movie, "movie_id", "left") \
            .withColumn("tags", F.coalesce("tags", F.array().cast("array<string>")))
    weighted = [(column, weight) for column, weight in (
        ("genre_vector", settings.genre_weight), ("decade_vector", settings.decade_weight),
        ("year_vector", settings.year_weight),
        ("title_vector", settings.title_weight),
        ("tag_vector", settings.tag_weight if "tags" in prepared.columns else 0)) if weight > 0]
    text = {"vocabSize": settings.vocabulary, "minDF": 2.0}
    stages = {
        "genre_vector": [CountVectorizer(inputCol="genres", outputCol="genre_vector", binary=True, minDF=1.0)],
        "decade_vector": [CountVectorizer(inputCol="decade", outputCol="decade_vector", binary=True, minDF=1.0)],
        "year_vector": [CountVectorizer(inputCol="year", outputCol="year_vector", binary=True, minDF=1.0)],
        "title_vector": [
            RegexTokenizer(inputCol="title", outputCol="words", pattern="[^\\p{L}\\p{N}]+", toLowercase=True),
            StopWordsRemover(inputCol="words", outputCol="kept"),
            CountVectorizer(inputCol="kept", outputCol="word_counts", **text),
            IDF(inputCol="word_counts", outputCol="title_vector")],
        "tag_vector": [CountVectorizer(inputCol="tags", outputCol="tag_counts", **text),
                       IDF(inputCol="tag_counts", outputCol="tag_vector")]}
    pipeline = Pipeline(stages=[stage for column, _ in weighted for stage in stages[column]])
    rows = pipeline.fit(prepared).transform(prepared).select(
        "movie_id", *(column for column, _ in weighted)).orderBy("movie_id").collect()
    ids = np.array([row["movie_id"] for row in rows], dtype=np.int64)
    blocks = [weight * _unit_rows(_csr([row[column] for row in rows]).toarray()) for column, weight in weighted
              if rows]
    if genome is not None and settings.genome_weight > 0 and len(ids):
        blocks.append(settings.genome_weight * _unit_rows(genome_block(genome, ids)))
    if not blocks:
        return ids, np.zeros((len(ids), 0), dtype=np.float32)
    return ids, _unit_rows(np.hstack(blocks).astype(np.float32))


def genome_block(genome: DataFrame, ids: np.ndarray) -> np.ndarray:
    """Movies x genome tags: relevance minus the tag's mean over the movies that have scores; zero rows for the
    movies without any."""
    scores = genome.select("movie_id", "tag_id", F.col("relevance").cast("float")).toPandas()
    tag_ids, columns = np.unique(scores.tag_id.to_numpy(), return_inverse=True)
    movie_ids = scores.movie_id.to_numpy()
    rows = np.minimum(np.searchsorted(ids, movie_ids), len(ids) - 1)
    known = ids[rows] == movie_ids
    block = np.zeros((len(ids), len(tag_ids)), dtype=np.float32)
    block[rows[known], columns[known]] = scores.relevance.to_numpy(np.float32)[known]
    scored = np.zeros(len(ids), bool)
    scored[rows[known]] = True
    block[scored] -= block[scored].mean(axis=0)
    return block


def content_neighbors(ids: np.ndarray, vectors: np.ndarray, n: int, of: np.ndarray | None = None) -> pa.Table:
    """(movie_id, rank, neighbor_id, score): each movie's (each of `of`'s, when given) n nearest others by
    cosine, only those sharing something (score > 0)."""
    table = neighbors_on_driver(Factors(ids, vectors), n, of)
    return table.filter(pc.greater(table.column("score"), 0))


class ContentMapping(NamedTuple):
    """A ridge mapping of content vectors to ALS factors: (vector - content_mean) @ mapping + target_mean."""

    content_mean: np.ndarray
    mapping: np.ndarray
    target_mean: np.ndarray

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return (vectors - self.content_mean) @ self.mapping + self.target_mean


def content_mapping(ids: np.ndarray, vectors: np.ndarray, items: Factors, reg: float,
                    weights: np.ndarray | None = None) -> ContentMapping:
    """The ridge regression (penalty `reg`, the intercept unpenalised) of the ALS factors of the movies in `items`
    on their content vectors (rows of `vectors`, named by `ids`)."""
    known = np.isin(ids, items.ids)
    # The products in float32 (BLAS, half the memory of the 25M shape's 59k x 2k vectors), the solve in float64.
    at = np.searchsorted(items.ids, ids[known])
    targets = items.matrix[at].astype(np.float32)
    # `weights`: each rated movie's weight in the regression, aligned with `items` (None: all alike).
    weight = None if weights is None else np.asarray(weights, np.float64)[at]

    def mean(rows: np.ndarray) -> np.ndarray:  # accumulated in float64 either way
        return (rows.mean(axis=0, dtype=np.float64) if weight is None else np.average(rows, axis=0, weights=weight)
                ).astype(np.float32)

    rated = vectors[known]
    content_mean, target_mean = mean(rated), mean(targets)
    rated -= content_mean  # the fancy index above is already a copy
    weighted = rated if weight is None else rated * (weight / weight.mean()).astype(np.float32)[:, None]
    gram = (weighted.T @ rated).astype(np.float64) + reg * np.eye(rated.shape[1])
    mapping = np.linalg.solve(gram, (weighted.T @ (targets - target_mean)).astype(np.float64)).astype(np.float32)
    return ContentMapping(content_mean, mapping, target_mean)


def factors_from_content(ids: np.ndarray, vectors: np.ndarray, items: Factors, reg: float,
                         weights: np.ndarray | None = None) -> Factors:
    """ALS-like factors for the catalogue movies ALS does not know (not in `items`), from their content: the
    `content_mapping` of the known movies applied to the others (an attribute-to-feature mapping: Gantner et al.,
    ICDM 2010). A new movie then sits where rated movies with its content sit, so a person's own ALS vector scores
    it, taste and popularity alike: on ML-100K's cold-movie protocol, NDCG@10 0.173 against a content profile's
    0.092 (`make bench-quality`)."""
    known = np.isin(ids, items.ids)
    if not len(items.ids) or known.all():
        return Factors(np.zeros(0, np.int64), np.zeros((0, items.matrix.shape[1]), np.float32))
    return Factors(ids[~known], content_mapping(ids, vectors, items, reg, weights).apply(vectors[~known]))


def new_movie_picks(users: Factors, new_movies: Factors, n: int) -> pa.Table:
    """(user_id, rank, movie_id, score): for each user, the n new movies (`factors_from_content`) their ALS
    vector scores highest, only those it scores above 0."""
    if not len(new_movies.ids) or not len(users.ids):
        return _schema("user_id", "movie_id").empty_table()
    nothing = pa.table({"user_id": pa.array([], pa.int64()), "movie_id": pa.array([], pa.int64())})
    table = top_n_on_driver(users, new_movies, nothing, n)
    return table.filter(pc.greater(table.column("score"), 0))


def new_by_genre(ids: np.ndarray, vectors: np.ndarray, known: set[int], genres: dict[int, list[str]],
                 liked_movies: np.ndarray, n: int, most_liked: int = 50) -> pa.Table:
    """(genre, rank, movie_id, score): per genre (and "_all", the whole catalogue), the movies ALS does not know
    (not in `known`) of that genre, nearest the genre's profile: the sum of the content vectors of its
    `most_liked` movies with the most ratings of 4 or more (`liked_movies`, one id per such rating)."""
    rows = []
    new = np.array([i for i, movie in enumerate(ids.tolist()) if movie not in known], dtype=np.int64)
    liked_ids, likes = np.unique(liked_movies, return_counts=True)
    by_likes = liked_ids[np.argsort(-likes, kind="stable")]
    genre_names = sorted({g for movie in ids.tolist() for g in genres.get(movie, ())})
    for genre in ["_all", *genre_names]:
        def of_genre(movie: int, genre: str = genre) -> bool:
            return genre == "_all" or genre in genres.get(movie, ())
        candidates = np.array([i for i in new if of_genre(int(ids[i]))], dtype=np.int64)
        favourites = [m for m in by_likes.tolist() if of_genre(m)][:most_liked]
        if not len(candidates) or not favourites:
            continue
        profile = vectors[np.searchsorted(ids, favourites)].sum(axis=0)
        scores = vectors[candidates] @ (profile / max(float(np.linalg.norm(profile)), 1e-12))
        order = np.lexsort((ids[candidates], -scores))[:n]
        rows += [(genre, rank, int(ids[candidates[i]]), float(scores[i])) for rank, i in enumerate(order, 1)]
    return pa.table({"genre": pa.array([r[0] for r in rows], pa.string()),
                     "rank": pa.array([r[1] for r in rows], pa.int32()),
                     "movie_id": pa.array([r[2] for r in rows], pa.int32()),
                     "score": pa.array([r[3] for r in rows], pa.float32())})


def _csr(vectors) -> sparse.csr_matrix:
    """Spark ML vectors (sparse or dense, one size) as one CSR matrix."""
    size = vectors[0].size
    indptr, indices, data = [0], [], []
    for vector in vectors:
        sparse_vector = vector.toSparse() if hasattr(vector, "toSparse") else vector
        indices.extend(sparse_vector.indices.tolist())
        data.extend(sparse_vector.values.tolist())
        indptr.append(len(indices))
    return sparse.csr_matrix((np.array(data, dtype=np.float32), np.array(indices, dtype=np.int64), indptr),
                             shape=(len(vectors), size))
