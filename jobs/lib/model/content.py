"""Content: a vector per catalogue movie from what the release says of it, rated or not, and the movies nearest to
each by those vectors. ALS knows a movie only once people rated it; content lets a new movie have neighbours
(and be found) from its first day.

A movie's vector joins three blocks, each scaled to unit length and then weighted (`content.*_weight`; title
words off by default: on ML-100K they lowered the cold-movie protocol's NDCG@10, `make bench-quality`):
- genres, one column each (binary);
- the decade of its year (binary), so that a 1950s western sits nearer the other 1950s westerns;
- title words, TF-IDF (Spark ML's RegexTokenizer, StopWordsRemover, CountVectorizer with minDF 2, IDF): a word
  shared by a few titles (a series, a character) counts, a word of one title alone cannot.
The joined vector is scaled to unit length: the dot product of two movies is their cosine similarity.
Neighbours are scored in this process (scipy sparse products, a block of movies at a time), and so are the new
movies (those ALS does not know) nearest each person's profile, for the slots a list gives them.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.ml import Pipeline
from pyspark.ml.feature import IDF, CountVectorizer, RegexTokenizer, StopWordsRemover
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import sparse

from conf.settings import ContentSettings
from jobs.lib.model.scoring import _best, _schema

BLOCK_SCORES = 1 << 24  # scores held at once while finding neighbours (a block of movies x the catalogue)


def content_vectors(movies: DataFrame, settings: ContentSettings) -> tuple[np.ndarray, sparse.csr_matrix]:
    """(movie ids ascending, one unit-length row per movie) for every movie of the catalogue."""
    prepared = movies.select(
        "movie_id", F.coalesce("title", F.lit("")).alias("title"),
        F.coalesce("genres", F.array().cast("array<string>")).alias("genres"),
        F.when(F.col("year").isNotNull(), F.array(F.concat(F.lit("d"), (F.floor(F.col("year") / 10) * 10)
                                                            .cast("int").cast("string"))))
        .otherwise(F.array().cast("array<string>")).alias("decade"))
    weighted = [(column, weight) for column, weight in (
        ("genre_vector", settings.genre_weight), ("decade_vector", settings.year_weight),
        ("title_vector", settings.title_weight)) if weight > 0]  # a block weighted 0 is not built at all
    stages = {
        "genre_vector": [CountVectorizer(inputCol="genres", outputCol="genre_vector", binary=True, minDF=1.0)],
        "decade_vector": [CountVectorizer(inputCol="decade", outputCol="decade_vector", binary=True, minDF=1.0)],
        "title_vector": [
            RegexTokenizer(inputCol="title", outputCol="words", pattern="[^\\p{L}\\p{N}]+", toLowercase=True),
            StopWordsRemover(inputCol="words", outputCol="kept"),
            CountVectorizer(inputCol="kept", outputCol="word_counts", minDF=2.0),
            IDF(inputCol="word_counts", outputCol="title_vector")]}
    pipeline = Pipeline(stages=[stage for column, _ in weighted for stage in stages[column]])
    rows = pipeline.fit(prepared).transform(prepared).select(
        "movie_id", *(column for column, _ in weighted)).orderBy("movie_id").collect()
    ids = np.array([row["movie_id"] for row in rows], dtype=np.int64)
    blocks = [weight * _unit_rows(_csr([row[column] for row in rows])) for column, weight in weighted if rows]
    if not blocks:
        return ids, sparse.csr_matrix((len(ids), 0), dtype=np.float32)
    return ids, _unit_rows(sparse.hstack(blocks, format="csr"))


def content_neighbors(ids: np.ndarray, vectors: sparse.csr_matrix, n: int) -> pa.Table:
    """(movie_id, rank, neighbor_id, score): each movie's n nearest others by cosine, only those sharing
    something (score > 0)."""
    block = max(1, BLOCK_SCORES // max(len(ids), 1))
    transposed = vectors.T.tocsc()
    batches = []
    for start in range(0, len(ids), block):
        scores = (vectors[start:start + block] @ transposed).toarray().astype(np.float32)
        scores[scores <= 0] = -np.inf
        rows = np.arange(scores.shape[0])
        scores[rows, rows + start] = -np.inf  # not its own neighbour
        batches.append(_best(scores, ids[start:start + block], ids, n, "query_id", pa.int32()))
    table = pa.Table.from_batches(batches, _schema("query_id", "movie_id"))
    return table.rename_columns(["movie_id", "rank", "neighbor_id", "score"])


def new_movie_picks(ids: np.ndarray, vectors: sparse.csr_matrix, known: set[int], liked_users: np.ndarray,
                    liked_movies: np.ndarray, n: int) -> pa.Table:
    """(user_id, rank, movie_id, score): for each user with liked movies, the n movies ALS does not know (not in
    `known`) nearest their profile, the sum of the content vectors of what they liked (cosine to the profile;
    only movies sharing something with it)."""
    new = np.array([i for i, movie in enumerate(ids.tolist()) if movie not in known], dtype=np.int64)
    if not len(new) or not len(liked_users):
        return _schema("user_id", "movie_id").empty_table()
    row_of = {int(movie): i for i, movie in enumerate(ids.tolist())}
    rows = np.array([row_of.get(int(m), -1) for m in liked_movies])
    users, user_rows = np.unique(liked_users[rows >= 0], return_inverse=True)
    likes = sparse.csr_matrix((np.ones(len(user_rows), dtype=np.float32), (user_rows, rows[rows >= 0])),
                              shape=(len(users), len(ids)))
    profiles = _unit_rows((likes @ vectors).tocsr())
    candidates = vectors[new].T.tocsc()
    block = max(1, BLOCK_SCORES // len(new))
    batches = []
    for start in range(0, len(users), block):
        scores = (profiles[start:start + block] @ candidates).toarray().astype(np.float32)
        scores[scores <= 0] = -np.inf
        batches.append(_best(scores, users[start:start + block], ids[new], n, "user_id", pa.int32()))
    return pa.Table.from_batches(batches, _schema("user_id", "movie_id"))


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


def _unit_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)).astype(np.float32) @ matrix
