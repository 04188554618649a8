"""The list shaping a handler does: filters, the fill-up to k, diversity."""
from schemas.diversity import diversify, intra_list_diversity
from serving.lists import Filters, candidates, fill, with_new


def movie(movie_id, genres, year=1990, score=1.0):
    return {"movie_id": movie_id, "title": f"m{movie_id}", "year": year, "genres": list(genres), "score": score}


def test_filters_keep_any_of_the_genres_within_the_years():
    western = movie(1, ["Western"], 1955)
    assert Filters(("Western", "Comedy")).keeps(western)
    assert not Filters(("Comedy",)).keeps(western)
    assert Filters((), 1955, 1955).keeps(western) and not Filters((), 1956).keeps(western)
    assert not Filters((), None, 1954).keeps(western)
    assert not Filters((), 1900).keeps({**western, "year": None})  # no year: never passes a year filter
    assert Filters().keeps({**western, "year": None}) and not Filters().active


def test_fill_tops_up_from_the_merged_pools_without_the_excluded_or_the_chosen():
    westerns = [movie(m, ["Western"], score=s) for m, s in ((10, 90), (11, 50), (12, 10))]
    comedies = [movie(m, ["Comedy"], score=s) for m, s in ((20, 80), (21, 60), (10, 90))]
    chosen = [movie(11, ["Western"])]
    filled = fill(chosen, [westerns, comedies], {20}, Filters(("Western", "Comedy")), 4)
    assert [m["movie_id"] for m in filled] == [11, 10, 21, 12]  # most rated first; 10 once; 20 excluded
    assert "filled" not in filled[0] and all(m["filled"] for m in filled[1:])
    assert fill([], [westerns], set(), Filters(), 5, mark=False) == westerns  # dry: shorter, never padded
    assert fill(filled, [westerns], set(), Filters(), 2) == filled[:2]


def test_candidates_keep_order():
    items = [movie(1, ["Drama"]), movie(2, ["Western"]), movie(3, ["Western"], 2001)]
    assert [m["movie_id"] for m in candidates(items, {2}, Filters(("Western",)))] == [3]
    assert candidates(items, set(), Filters()) == items


def test_diversity_zero_keeps_the_order_and_more_mixes_genres():
    items = [movie(1, ["Sci-Fi"]), movie(2, ["Sci-Fi"]), movie(3, ["Sci-Fi"]), movie(4, ["Drama"]),
             movie(5, ["Comedy"]), movie(6, ["Sci-Fi"])]
    assert diversify(items, 3, 0.0) == items[:3]
    mixed = diversify(items, 3, 0.5)
    assert [m["movie_id"] for m in mixed] == [1, 4, 5]  # the best first, then the best of other genres
    assert intra_list_diversity(mixed) > intra_list_diversity(items[:3]) == 0.0
    assert len(diversify(items, 10, 1.0)) == 6


def test_new_movies_take_the_last_slots_unless_excluded_shown_or_filtered_out():
    items = [movie(m, ["Drama"]) for m in (1, 2, 3, 4)]
    picks = [movie(9, ["Horror"]), movie(8, ["Drama"]), movie(2, ["Drama"]), movie(7, ["Drama"])]
    got = with_new(items, picks, {9}, Filters(), 4, 2)
    assert [m["movie_id"] for m in got] == [1, 2, 8, 7] and [m.get("new") for m in got] == [None, None, True, True]
    assert with_new(items, picks, set(), Filters(("Comedy",)), 4, 2) == items
    assert with_new(items, None, set(), Filters(), 4, 1) == items
