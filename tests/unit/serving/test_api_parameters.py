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
    query_args,
)
from serving.lists import Filters

HOSTILE = ["--5", "-5", "+5", " 5", "5 ", "5\x00", "٥", "５", "²", "1e3", "0x10", "5.0", "", " ", "-0", "0",
           "9" * 40, "１０", "5,6", "NaN", "inf", "None", "%35"]


@pytest.fixture()
def query_of():
    """The query parameters a handler reads (query_args) from a request whose query string holds `params`
    exactly (URL-encoded as a client would)."""
    from flask import Flask
    app = Flask(__name__)

    def parsed(params):
        with app.test_request_context("/", query_string=params):
            return query_args()
    return parsed


@pytest.mark.parametrize("raw", [b"k=\xff", b"k=5&genre=\xc3", b"\xe9=1"])
def test_a_query_string_of_raw_bytes_that_are_not_utf8_is_refused(raw):
    from flask import Flask
    # As a WSGI server hands the request's bytes over: as latin-1 text.
    with Flask(__name__).test_request_context("/", environ_overrides={"QUERY_STRING": raw.decode("latin-1")}):
        with pytest.raises(BadRequest) as refused:
            query_args()
    assert refused.value.status == 400 and "UTF-8" in refused.value.detail


@pytest.mark.parametrize("raw", [*HOSTILE, "5" * 7, "51"])
def test_k_refuses_everything_but_a_plain_number_in_range(query_of, raw):
    with pytest.raises(BadRequest) as refused:
        parse_k(query_of({"k": raw}), 50)
    assert refused.value.status == 400 and "k must be a whole number from 1 to 50" in refused.value.detail


@pytest.mark.parametrize("raw", HOSTILE)
def test_ids_refuse_everything_but_a_plain_number_in_range(raw):
    with pytest.raises(BadRequest) as refused:
        parse_id(raw, "user_id")
    assert refused.value.status == 400 and "user_id must be a whole number" in refused.value.detail


def test_good_values_and_repeated_parameters(query_of):
    query = query_of([("k", "7"), ("k", "--5"), ("genre", "sci-fi"), ("genre", "\x00"), ("user_id", "42"),
                      ("user_id", "x")])
    assert parse_k(query, 50) == 7  # the first of a repeated parameter counts
    assert parse_filters(query) == Filters(("Sci-Fi",)) and parse_for_user(query) == 42
    nothing = query_of({})
    assert parse_k(nothing, 50) == 10 and parse_k(nothing, 5) == 5 and parse_filters(nothing) == Filters()
    assert parse_for_user(nothing) is None and parse_diversity(nothing) == 0.0
    assert parse_id("2147483647", "movie_id") == 2147483647
    with pytest.raises(BadRequest):
        parse_id("2147483648", "movie_id")


@pytest.mark.parametrize("raw", ["Sci-Fi ", "SCI-FI", "sci fi", "Comedy\x00", "<script>", "Ｃomedy", "x" * 5000,
                                 "Comedy,", ",Comedy", "Comedy,,Drama", "Comedy, Drama", ",".join(["Drama"] * 20)])
def test_genre_refuses_what_it_does_not_know(query_of, raw):
    with pytest.raises(BadRequest) as refused:
        parse_filters(query_of({"genre": raw}))
    assert refused.value.status == 400 and len(refused.value.detail) < 400


def test_genres_and_years(query_of):
    query = query_of({"genre": "western,Comedy,western", "year_min": "1950", "year_max": "1950"})
    assert parse_filters(query) == Filters(("Western", "Comedy"), 1950, 1950)
    assert parse_filters(query_of({"year_max": "1960"})) == Filters((), None, 1960)


@pytest.mark.parametrize("raw", [*HOSTILE, "1799", "2101", "195", "19500", "1950.0"])
@pytest.mark.parametrize("name", ["year_min", "year_max"])
def test_years_refuse_everything_but_a_plain_year_in_range(query_of, name, raw):
    with pytest.raises(BadRequest) as refused:
        parse_filters(query_of({name: raw}))
    assert refused.value.status == 400 and name in refused.value.detail


def test_year_min_after_year_max_is_an_empty_range(query_of):
    filters = parse_filters(query_of({"year_min": "1990", "year_max": "1980"}))
    assert not any(filters.keeps({"movie_id": 1, "genres": [], "year": year}) for year in range(1970, 2000))


@pytest.mark.parametrize("raw", [*(r for r in HOSTILE if r not in ("0", "-0")), "1.5", "2", "0.0001", ".5", "0.",
                                 "1.001", "00.5", "0,5", "１"])
def test_diversity_refuses_everything_but_a_number_from_0_to_1(query_of, raw):
    with pytest.raises(BadRequest) as refused:
        parse_diversity(query_of({"diversity": raw}))
    assert refused.value.status == 400 and "diversity" in refused.value.detail


def test_diversity_reads_numbers(query_of):
    for raw, value in (("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("0.333", 0.333), ("1.000", 1.0)):
        assert parse_diversity(query_of({"diversity": raw})) == value


@pytest.mark.parametrize("raw", [*(r for r in HOSTILE if r != "5,6"), "1,,2", "1,", ",1", "1, 2", "05",
                                 ",".join(["7"] * 101)])
def test_exclude_takes_up_to_a_hundred_plain_ids(query_of, raw):
    with pytest.raises(BadRequest) as refused:
        parse_exclude(query_of({"exclude": raw}))
    assert refused.value.status == 400 and len(refused.value.detail) < 400


def test_exclude_reads_ids(query_of):
    assert parse_exclude(query_of({"exclude": "50,181,50"})) == {50, 181}
    assert len(parse_exclude(query_of({"exclude": ",".join(str(m) for m in range(1, 101))}))) == 100
    assert parse_exclude(query_of({})) == set()
