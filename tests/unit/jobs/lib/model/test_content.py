"""Content vectors and neighbours on a tiny catalogue (real Spark ML)."""
import numpy as np

from conf.settings import ContentSettings
from jobs.lib.model.content import content_neighbors, content_vectors


def test_every_movie_gets_neighbours_by_genre_decade_and_title_words(spark):
    movies = spark.createDataFrame([
        (1, "Alien", 1979, ["Sci-Fi", "Horror"]), (2, "Aliens", 1986, ["Sci-Fi", "Horror", "Action"]),
        (3, "Alien Nation", 1988, ["Sci-Fi"]), (4, "Heat", 1995, ["Crime"]), (5, "Toy Story", 1995,
        ["Animation", "Children"]), (6, "Toy Story 2", 1999, ["Animation", "Children"]),
        (7, "Zzyzx", None, [])], "movie_id int, title string, year int, genres array<string>")
    ids, vectors = content_vectors(movies, ContentSettings(title_weight=0.5))
    assert ids.tolist() == [1, 2, 3, 4, 5, 6, 7]
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    assert np.allclose(norms[:6], 1.0, atol=1e-6) and norms[6] == 0  # nothing known of 7
    _, by_default = content_vectors(movies, ContentSettings())  # genres and decade: no title block
    assert by_default.shape[1] == 6 + 3  # Sci-Fi, Horror, Action, Crime, Animation, Children; the 1970s-1990s
    neighbours = {}
    for row in content_neighbors(ids, vectors, 3).to_pylist():
        neighbours.setdefault(row["movie_id"], []).append((row["neighbor_id"], row["score"]))
    assert neighbours[6][0][0] == 5  # same genres, same decade-ish and "toy", "story"
    assert neighbours[3][0][0] == 1  # "alien" and Sci-Fi beat Aliens' extra genre
    assert 7 not in neighbours and all(m != n for m, ns in neighbours.items() for n, _ in ns)
    assert all(0 < score <= 1.0001 for ns in neighbours.values() for _, score in ns)
    # The title alone: weights decide what counts.
    _, titles_only = content_vectors(movies, ContentSettings(genre_weight=0, year_weight=0, title_weight=1))
    alone = content_neighbors(ids, titles_only, 3).to_pylist()
    assert {(r["movie_id"], r["neighbor_id"]) for r in alone} == {(1, 3), (3, 1), (5, 6), (6, 5)}
