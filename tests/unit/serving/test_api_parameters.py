"""Every query parameter the API parses, fed what hostile clients send: a 400 with a JSON reason, never a 500."""
import pytest

from serving.api import BadRequest, parse_exclude, parse_for_user, parse_genre, parse_id, parse_k

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
        assert parse_genre() == "Sci-Fi" and parse_for_user() == 42
    with request_with({}):
        assert parse_k(50) == 10 and parse_k(5) == 5 and parse_genre() is None and parse_for_user() is None
    assert parse_id("2147483647", "movie_id") == 2147483647
    with pytest.raises(BadRequest):
        parse_id("2147483648", "movie_id")


@pytest.mark.parametrize("raw", ["Sci-Fi ", "SCI-FI", "sci fi", "Comedy\x00", "<script>", "Ｃomedy", "x" * 5000])
def test_genre_refuses_what_it_does_not_know(request_with, raw):
    with request_with({"genre": raw}), pytest.raises(BadRequest) as refused:
        parse_genre()
    assert refused.value.status == 400 and len(refused.value.detail) < 400


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
