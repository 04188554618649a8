"""validate: corrupted copies of MovieLens 100K stop with the failed expectation named; a clean copy passes."""
import shutil

import pytest

from jobs import ingest, validate
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import run_paths
from schemas.storage import read_json


def corrupt_copy(source, target, ratings=None, items=None, ratings_bytes=None):
    shutil.copytree(source, target)
    if ratings is not None:
        lines = (source / "u.data").read_text().splitlines()
        (target / "u.data").write_text("\n".join(ratings(lines)) + ("\n" if ratings(lines) else ""))
    if ratings_bytes is not None:
        (target / "u.data").write_bytes(ratings_bytes((source / "u.data").read_text()))
    if items is not None:
        lines = (source / "u.item").read_text(encoding="latin-1").splitlines()
        (target / "u.item").write_text("\n".join(items(lines)) + "\n", encoding="latin-1")
    return target


def replace_field(index, value, every=1000, offset=0):
    def apply(lines):
        out = []
        for n, line in enumerate(lines):
            fields = line.split("\t")
            if n % every == offset:
                fields[index] = value
            out.append("\t".join(fields))
        return out
    return apply


def each(*changes):
    """The changes applied one after the other."""
    def apply(lines):
        for change in changes:
            lines = change(lines)
        return lines
    return apply


# Each corruption touches one column, on rows of its own: applied together to one copy, each must be named by its
# own expectation and nothing else may fail (an expectation reads one column, so none can hide another).
# {case: (the file it changes, the change, the expectation that stops it)}
ONE_COLUMN_EACH = {
    "rating_out_of_range": ("ratings", replace_field(2, "7", offset=0),
                            "expect_column_values_to_be_in_set(column='rating'"),
    "null_user_ids": ("ratings", replace_field(0, "", offset=1),
                      "expect_column_values_to_not_be_null(column='user_id'"),
    "unknown_movie_ids": ("ratings", replace_field(1, "99999", offset=2),
                          "expect_column_values_to_be_in_set(column='movie_in_catalog'"),
    "timestamps_out_of_range": ("ratings", replace_field(3, "86400", offset=3),
                                "expect_column_values_to_be_between(column='ts'"),
    "duplicate_movie_ids": ("items", lambda lines: lines + [lines[0]],
                            "expect_column_values_to_be_unique(column='movie_id')"),
}
# Corruptions of the whole file, or of whole lines: each on a copy of its own.
CASES = {
    "malformed_lines": (dict(ratings=lambda lines: lines[:5000] + ["this is not a rating"] * 3 + lines[5000:]),
                        "expect_column_values_to_not_be_null(column='movie_id'"),
    "empty_ratings_file": (dict(ratings=lambda lines: []), "expect_table_row_count_to_be_between"),
    "wrong_delimiter": (dict(ratings=lambda lines: [line.replace("\t", ",") for line in lines]),
                        "expect_column_values_to_not_be_null(column='movie_id'"),
    "wrong_encoding_utf16": (dict(ratings_bytes=lambda text: text.encode("utf-16")),
                             "expect_column_values_to_not_be_null(column='user_id'"),
}


def stopped_naming(spark, config, run_id, expected) -> list[str]:
    """Ingest, then validate expecting it to stop naming every one of `expected`; the report's failed lines."""
    ingest.run(config, run_id, spark=spark)
    with pytest.raises(JobError) as err:
        validate.run(config, run_id, spark=spark)
    report = read_json(run_paths(config, run_id).validation_report)
    assert report["success"] is False
    for expectation in expected:
        assert expectation in str(err.value)
        assert any(expectation in line for line in report["failed"])
        assert any(expectation in row["expectation"] and not row["success"] for row in report["expectations"])
    return report["failed"]


def test_corruptions_of_one_column_each_are_each_named(spark, make_config, ml100k_dir, tmp_path):
    changes = {file: each(*[change for changed, change, _ in ONE_COLUMN_EACH.values() if changed == file])
               for file in ("ratings", "items")}
    folder = corrupt_copy(ml100k_dir, tmp_path / "ml-100k", **changes)
    config = make_config(tmp_path / "data", data__movielens_dir=str(folder))
    failed = stopped_naming(spark, config, "one_column_each", [named for _, _, named in ONE_COLUMN_EACH.values()])
    assert len(failed) == len(ONE_COLUMN_EACH), failed


@pytest.mark.parametrize("case", sorted(CASES))
def test_corrupted_input_stops_naming_the_expectation(spark, make_config, ml100k_dir, tmp_path, case):
    corruption, expected = CASES[case]
    folder = corrupt_copy(ml100k_dir, tmp_path / "ml-100k", **corruption)
    config = make_config(tmp_path / "data", data__movielens_dir=str(folder))
    stopped_naming(spark, config, case, [expected])


def test_clean_copy_passes_and_writes_data_docs(spark, make_config, tmp_path):
    config = make_config(tmp_path / "data")
    ingest.run(config, "ok", spark=spark)
    result = validate.run(config, "ok", spark=spark)
    assert result["success"] and result["expectations"] == 15
    report = read_json(run_paths(config, "ok").validation_report)
    docs = tmp_path / "data" / "runs" / "ok" / "validate" / "data_docs" / "index.html"
    assert report["data_docs"] == str(docs) and docs.is_file()
    assert list(docs.parent.glob("validations/**/*.html"))


def test_tolerated_bad_fraction_lets_clean_drop_and_count(spark, make_config, ml100k_dir, tmp_path):
    from jobs import clean
    folder = corrupt_copy(ml100k_dir, tmp_path / "ml-100k", ratings=replace_field(2, "9", every=5000))
    config = make_config(tmp_path / "data", data__movielens_dir=str(folder), validation__max_bad_fraction=0.001)
    ingest.run(config, "soft", spark=spark)
    assert validate.run(config, "soft", spark=spark)["success"]
    report = clean.run(config, "soft", spark=spark)
    assert report["dropped"]["rating_off_scale"] == 20
    assert report["ratings_out"] == 100_000 - 20


def _events_waiting(redis_url: str, good: int, bad: int) -> None:
    """Events in the stream as intake writes them: `good` valid ratings and clicks, then `bad` ones that a
    broken sender (or a catalogue change since intake) could leave: unknown movies and off-scale ratings."""
    import redis

    from schemas import redis_keys as rk
    from schemas.events import to_stream_fields
    client = redis.Redis.from_url(redis_url)
    for n in range(good):
        kind = "rating" if n % 2 else "click"
        client.xadd(rk.EVENTS, to_stream_fields({"user_id": 900_300 + n % 7, "movie_id": 1 + n, "type": kind,
                                                 "rating": 4.0 if kind == "rating" else None, "ts": 1_700_000_000}))
    for n in range(bad):
        event = ({"movie_id": 99_999, "type": "click", "rating": None} if n % 2 else
                 {"movie_id": 1 + n, "type": "rating", "rating": 4.5})
        client.xadd(rk.EVENTS, to_stream_fields({"user_id": 900_399, "ts": 1_700_000_000, **event}))


def test_a_few_bad_events_are_dropped_and_counted_by_clean(spark, make_config, tmp_path):
    from jobs import clean
    from tests.support import RedisServer
    server = RedisServer(tmp_path / "redis").start()
    try:
        _events_waiting(server.url, good=300, bad=2)
        config = make_config(tmp_path / "data", redis__url=server.url, events__archive=True)
        ingest.run(config, "few_bad", spark=spark)
        result = validate.run(config, "few_bad", spark=spark)
        assert result["success"] and result["expectations"] == 23  # the events suite ran
        events = clean.run(config, "few_bad", spark=spark)["events"]
        assert events["ratings_in"] == 151 and events["ratings_kept"] == 150
        assert events["ratings_dropped"]["rating_off_scale"] == 1
        assert events["clicks_in"] == 151 and events["clicks_dropped"]["unknown_movie"] == 1
        assert events["click_pairs"] == 150
    finally:
        server.stop()


def test_a_flood_of_bad_events_stops_the_run(spark, make_config, tmp_path):
    from tests.support import RedisServer
    server = RedisServer(tmp_path / "redis").start()
    try:
        _events_waiting(server.url, good=100, bad=20)
        config = make_config(tmp_path / "data", redis__url=server.url, events__archive=True)
        ingest.run(config, "flood", spark=spark)
        with pytest.raises(JobError) as err:
            validate.run(config, "flood", spark=spark)
        assert "expect_column_values_to_be_in_set(column='movie_in_catalog'" in str(err.value)
        assert "expect_column_values_to_be_in_set(column='rating_on_scale'" in str(err.value)
        failed = read_json(run_paths(config, "flood").validation_report)["failed"]
        assert all("events" in line for line in failed)
    finally:
        server.stop()
