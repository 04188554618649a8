"""Content vectors and neighbours on a tiny catalogue (real Spark ML)."""
import numpy as np

from conf.settings import ContentSettings
from jobs.lib.model.content import (
    content_neighbors,
    content_vectors,
    factors_from_content,
    new_by_genre,
    new_movie_picks,
)
from jobs.lib.model.scoring import Factors


def test_every_movie_gets_neighbours_by_genre_decade_and_title_words(spark):
    movies = spark.createDataFrame([
        (1, "Alien", 1979, ["Sci-Fi", "Horror"]), (2, "Aliens", 1986, ["Sci-Fi", "Horror", "Action"]),
        (3, "Alien Nation", 1988, ["Sci-Fi"]), (4, "Heat", 1995, ["Crime"]), (5, "Toy Story", 1995,
        ["Animation", "Children"]), (6, "Toy Story 2", 1999, ["Animation", "Children"]),
        (7, "Zzyzx", None, [])], "movie_id int, title string, year int, genres array<string>")
    ids, vectors = content_vectors(movies, ContentSettings(title_weight=0.5))
    assert ids.tolist() == [1, 2, 3, 4, 5, 6, 7]
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms[:6], 1.0, atol=1e-6) and norms[6] == 0  # nothing known of 7
    _, by_default = content_vectors(movies, ContentSettings())  # genres, decade and year: no title block
    # Sci-Fi, Horror, Action, Crime, Animation, Children; the 1970s-1990s; 1979, 1986, 1988, 1995, 1999
    assert by_default.shape[1] == 6 + 3 + 5
    neighbours = {}
    for row in content_neighbors(ids, vectors, 3).to_pylist():
        neighbours.setdefault(row["movie_id"], []).append((row["neighbor_id"], row["score"]))
    assert neighbours[6][0][0] == 5  # same genres, same decade-ish and "toy", "story"
    assert neighbours[3][0][0] == 1  # "alien" and Sci-Fi beat Aliens' extra genre
    assert 7 not in neighbours and all(m != n for m, ns in neighbours.items() for n, _ in ns)
    assert all(0 < score <= 1.0001 for ns in neighbours.values() for _, score in ns)
    # Of some movies only (the ones ALS does not know): their same rows, among all the catalogue's movies.
    some = content_neighbors(ids, vectors, 3, of=np.array([3, 6, 7])).to_pylist()
    assert {row["movie_id"] for row in some} == {3, 6}
    assert [(r["movie_id"], r["neighbor_id"], r["score"]) for r in some] == [
        (m, n, s) for m in (3, 6) for n, s in neighbours[m]]
    # The title alone: weights decide what counts.
    _, titles_only = content_vectors(movies, ContentSettings(genre_weight=0, decade_weight=0, year_weight=0,
                                                             title_weight=1))
    alone = content_neighbors(ids, titles_only, 3).to_pylist()
    assert {(r["movie_id"], r["neighbor_id"]) for r in alone} == {(1, 3), (3, 1), (5, 6), (6, 5)}


def test_the_year_itself_counts_within_a_decade(spark):
    movies = spark.createDataFrame([(1, "A", 1995, ["Drama"]), (2, "B", 1995, ["Drama"]), (3, "C", 1991, ["Drama"])],
                                   "movie_id int, title string, year int, genres array<string>")
    ids, vectors = content_vectors(movies, ContentSettings())
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] > 0  # same genre and decade; 1 and 2 also share their year
    _, without = content_vectors(movies, ContentSettings(year_weight=0))
    assert np.isclose((without @ without.T)[0, 1], (without @ without.T)[0, 2])


def test_tags_and_genome_bring_together_movies_their_genres_keep_apart(spark):
    movies = spark.createDataFrame([
        (1, "A", 1990, ["Drama"]), (2, "B", 1990, ["Comedy"]), (3, "C", 1990, ["Drama"]),
        (4, "D", 1990, ["Comedy"]), (5, "E", 1990, ["Drama"])],
        "movie_id int, title string, year int, genres array<string>")
    # Tags: 1 and 2 are both "time travel"; 3 and 4 both "heist"; TF is the number of people.
    tags = spark.createDataFrame([(1, "time travel", 5), (2, "time travel", 3), (3, "heist", 2), (4, "heist", 4),
                                  (5, "one of a kind", 1)], "movie_id int, tag string, people long")
    by_genre = dict(neighbour_pairs(*content_vectors(movies, ContentSettings())))
    assert by_genre[1] in (3, 5) and by_genre[2] == 4  # genres and decade alone: Drama with Drama
    tagged = ContentSettings(genre_weight=0.2, decade_weight=0, year_weight=0, tag_weight=1)
    ids, vectors = content_vectors(movies, tagged, tags)
    assert vectors.shape[1] == 2 + 2  # two genres; "one of a kind" is a tag of one movie (minDF 2)
    near = dict(neighbour_pairs(ids, vectors))
    assert near[1] == 2 and near[2] == 1 and near[3] == 4 and near[4] == 3
    # The genome: relevance centred per tag, so what every movie has a lot of ("good") does not count.
    genome = spark.createDataFrame(
        [(m, 1, 0.9) for m in range(1, 6)] + [(1, 2, 0.9), (5, 2, 0.8), (2, 2, 0.1), (3, 2, 0.1), (4, 2, 0.2),
                                              (1, 3, 0.1), (5, 3, 0.2), (2, 3, 0.7), (3, 3, 0.8), (4, 3, 0.9)],
        "movie_id int, tag_id int, relevance double")
    ids, vectors = content_vectors(movies, ContentSettings(genre_weight=0, decade_weight=0, year_weight=0), None,
                                   genome)
    assert vectors.shape == (5, 3) and np.allclose(vectors[:, 0], 0)
    near = dict(neighbour_pairs(ids, vectors))
    assert near[1] == 5 and near[5] == 1 and near[2] in (3, 4)


def neighbour_pairs(ids, vectors):
    """(movie, its nearest neighbour) pairs."""
    return [(row["movie_id"], row["neighbor_id"]) for row in content_neighbors(ids, vectors, 1).to_pylist()]


def test_new_movies_per_genre_nearest_the_genres_most_liked():
    ids = np.array([1, 2, 3, 4, 5, 6])
    # Columns: horror, comedy, 1970s, 1990s. 1-3 are known to ALS; 4-6 are new.
    vectors = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 0, 1], [1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0]], float)
    genres = {1: ["Horror"], 2: ["Horror"], 3: ["Comedy"], 4: ["Horror"], 5: ["Horror"], 6: ["Comedy"]}
    liked = np.array([1, 1, 1, 2, 3, 3])  # 1 the most liked horror movie, then 2
    table = new_by_genre(ids, vectors, {1, 2, 3}, genres, liked, n=10, most_liked=1).to_pylist()
    lists = {}
    for row in table:
        lists.setdefault(row["genre"], []).append(row["movie_id"])
    assert lists["Horror"] == [4, 5]  # 4 is like 1 (a 1970s horror movie), the genre's most liked
    assert lists["Comedy"] == [6]
    assert lists["_all"] == [4, 5, 6]  # the catalogue's most liked is 1: horror first
    assert all(row["rank"] == i + 1 for genre in lists for i, row in enumerate(r for r in table if r["genre"] == genre))


def test_new_movies_get_the_factors_rated_movies_with_their_content_have():
    rng = np.random.default_rng(0)
    ids = np.arange(1, 201)
    vectors = rng.normal(size=(200, 6)).astype(np.float32)
    mapping = rng.normal(size=(6, 4))
    factors = (vectors @ mapping + 0.5).astype(np.float32)  # ALS factors exactly linear in content, plus a shift
    known = ids <= 180
    items = Factors(ids[known], factors[known])
    new = factors_from_content(ids, vectors, items, reg=1e-3)
    assert new.ids.tolist() == list(range(181, 201))
    np.testing.assert_allclose(new.matrix, factors[~known], atol=1e-2)
    # The regression sees the rated movies only: a penalty pulls the new ones toward their mean factor.
    shrunk = factors_from_content(ids, vectors, items, reg=1e6)
    np.testing.assert_allclose(shrunk.matrix, np.broadcast_to(factors[known].mean(axis=0), (20, 4)), atol=0.05)


def test_weighted_mapping_follows_the_movies_that_weigh_most():
    """Two groups of rated movies whose factors follow different rules from the same content: weighted, the
    mapping is the rule of the group that weighs most."""
    rng = np.random.default_rng(1)
    ids = np.arange(1, 401)
    vectors = rng.normal(size=(400, 5)).astype(np.float32)
    heavy, light = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    factors = np.where((ids <= 190)[:, None], vectors @ heavy, vectors @ light).astype(np.float32)
    known = ids <= 380
    items = Factors(ids[known], factors[known])
    weights = np.where(ids[known] <= 190, 1000.0, 1.0)
    mapped = factors_from_content(ids, vectors, items, reg=1e-3, weights=weights)
    np.testing.assert_allclose(mapped.matrix, vectors[~known] @ heavy, atol=0.1)
    plain = factors_from_content(ids, vectors, items, reg=1e-3)
    assert np.abs(plain.matrix - vectors[~known] @ heavy).max() > 0.5


def test_new_picks_are_what_each_persons_vector_scores_above_zero():
    new_movies = Factors(np.array([7, 8, 9]), np.array([[1, 0], [0, 1], [-1, -1]], np.float32))
    users = Factors(np.array([1, 2, 3]), np.array([[2, 1], [0, 3], [-1, -1]], np.float32))
    picks = {}
    for row in new_movie_picks(users, new_movies, n=2).to_pylist():
        picks.setdefault(row["user_id"], []).append(row["movie_id"])
    assert picks == {1: [7, 8], 2: [8], 3: [9]}  # 2 scores 7 at 0 and 9 below: only 8
