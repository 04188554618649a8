"""Every query parameter the API parses, fed what hostile clients send: a 400 with a JSON reason, never a 500."""
import pytest

from serving.http import (
    BadRequest,
    parse_diversity,
    parse_exclude,
    parse_filters,
    parse_for_user,
    parse_id,
    parse_k,
)
from serving.lists import Filters

HOSTILE = ["--5", "-5", "+5", " 5", "5 ", "5\x00", "٥", "５", "²", "1e3", "0x10", "5.0", "", " ", "-0", "0",
           "9" * 40, "１０", "5,6", "NaN", "inf", "None", "%35"]


@pytest.fixture()
def request_with():
    """A request context whose query string holds `params` exactly (URL-encoded as a client would)."""
    from flask import Flask
    app = Flask(__name__)
    return lambda params: app.test_request_context("/", query_string=params)


@pytest.mark.parametrize("raw", [*HOSTILE, "5" * 7, "51"])
def test_k_refuses_everything_but_a_plain_number_in_range(request_with, raw):
    with request_with({"k": raw}), pytest.raises(BadRequest) as refused:
        parse_k(50)
    assert refused.value.status == 400 and "k must be a whole number from 1 to 50" in refused.value.detail


@pytest.mark.parametrize("raw", HOSTILE)
def test_ids_refuse_everything_but_a_plain_number_in_range(raw):
    with pytest.raises(BadRequest) as refused:
        parse_id(raw, "user_id")
    assert refused.value.status == 400 and "user_id must be a whole number" in refused.value.detail


def test_good_values_and_repeated_parameters(request_with):
    with request_with([("k", "7"), ("k", "--5"), ("genre", "sci-fi"), ("genre", "\x00"), ("user_id", "42"),
                       ("user_id", "x")]):
        assert parse_k(50) == 7  # the first of a repeated parameter counts
        assert parse_filters() == Filters(("Sci-Fi",)) and parse_for_user() == 42
    with request_with({}):
        assert parse_k(50) == 10 and parse_k(5) == 5 and parse_filters() == Filters() and parse_for_user() is None
        assert parse_diversity() == 0.0
    assert parse_id("2147483647", "movie_id") == 2147483647
    with pytest.raises(BadRequest):
        parse_id("2147483648", "movie_id")


@pytest.mark.parametrize("raw", ["Sci-Fi ", "SCI-FI", "sci fi", "Comedy\x00", "<script>", "Ｃomedy", "x" * 5000,
                                 "Comedy,", ",Comedy", "Comedy,,Drama", "Comedy, Drama", ",".join(["Drama"] * 20)])
def test_genre_refuses_what_it_does_not_know(request_with, raw):
    with request_with({"genre": raw}), pytest.raises(BadRequest) as refused:
        parse_filters()
    assert refused.value.status == 400 and len(refused.value.detail) < 400


def test_genres_and_years(request_with):
    with request_with({"genre": "western,Comedy,western", "year_min": "1950", "year_max": "1950"}):
        assert parse_filters() == Filters(("Western", "Comedy"), 1950, 1950)
    with request_with({"year_max": "1960"}):
        assert parse_filters() == Filters((), None, 1960)


@pytest.mark.parametrize("raw", [*HOSTILE, "1799", "2101", "195", "19500", "1950.0"])
@pytest.mark.parametrize("name", ["year_min", "year_max"])
def test_years_refuse_everything_but_a_plain_year_in_range(request_with, name, raw):
    with request_with({name: raw}), pytest.raises(BadRequest) as refused:
        parse_filters()
    assert refused.value.status == 400 and name in refused.value.detail


def test_year_min_after_year_max_is_an_empty_range(request_with):
    with request_with({"year_min": "1990", "year_max": "1980"}):
        filters = parse_filters()
    assert not any(filters.keeps({"movie_id": 1, "genres": [], "year": year}) for year in range(1970, 2000))


@pytest.mark.parametrize("raw", [*(r for r in HOSTILE if r not in ("0", "-0")), "1.5", "2", "0.0001", ".5", "0.",
                                 "1.001", "00.5", "0,5", "１"])
def test_diversity_refuses_everything_but_a_number_from_0_to_1(request_with, raw):
    with request_with({"diversity": raw}), pytest.raises(BadRequest) as refused:
        parse_diversity()
    assert refused.value.status == 400 and "diversity" in refused.value.detail


def test_diversity_reads_numbers(request_with):
    for raw, value in (("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("0.333", 0.333), ("1.000", 1.0)):
        with request_with({"diversity": raw}):
            assert parse_diversity() == value


@pytest.mark.parametrize("raw", [*(r for r in HOSTILE if r != "5,6"), "1,,2", "1,", ",1", "1, 2", "05",
                                 ",".join(["7"] * 101)])
def test_exclude_takes_up_to_a_hundred_plain_ids(request_with, raw):
    with request_with({"exclude": raw}), pytest.raises(BadRequest) as refused:
        parse_exclude()
    assert refused.value.status == 400 and len(refused.value.detail) < 400


def test_exclude_reads_ids(request_with):
    with request_with({"exclude": "50,181,50"}):
        assert parse_exclude() == {50, 181}
    with request_with({"exclude": ",".join(str(m) for m in range(1, 101))}):
        assert len(parse_exclude()) == 100
    with request_with({}):
        assert parse_exclude() == set()
