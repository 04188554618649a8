"""A movie added to the catalogue before anyone rated it: content neighbours from the next run, served by the real
app from a real Redis."""
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jobs import publish, recommend
from jobs.lib.runtime.run_layout import mark_latest, run_paths
from schemas.storage import read_table
from serving.app import create_app
from tests.serving.test_web_page import ARGS, CHROMIUM
from tests.support import RedisServer

NEW_MOVIE = 1683  # ML-100K's ids end at 1682


def test_a_movie_nobody_rated_has_neighbours_by_content(pipeline_run, spark, tmp_path):
    config, run_id, paths, _ = pipeline_run
    new_run = "it_new_movie"
    new_paths = run_paths(config, new_run)
    shutil.copytree(paths.root, new_paths.root)
    movies = read_table(new_paths.clean_movies)
    added = pa.table({"movie_id": [NEW_MOVIE], "title": ["Night of the Creeping Dead"], "year": [1998],
                      "genres": [["Horror"]]}).cast(movies.schema)
    shutil.rmtree(new_paths.clean_movies)
    Path(new_paths.clean_movies).mkdir()
    pq.write_table(pa.concat_tables([movies, added]), f"{new_paths.clean_movies}/part-0.parquet")
    recommend.run(config, new_run, spark=spark)
    server = RedisServer(tmp_path / "redis").start()
    try:
        local = config.model_copy(update={"redis": config.redis.model_copy(update={"url": server.url})})
        publish.run(local, new_run, spark=spark, force=True)
        client = create_app(local).test_client()
        body = client.get(f"/v1/movies/{NEW_MOVIE}/similar?k=10").get_json()
        assert body["source"] == "content" and len(body["items"]) == 10
        horror = sum("Horror" in item["genres"] for item in body["items"])
        assert horror == 10, body["items"]
        assert sum(1990 <= item["year"] <= 1999 for item in body["items"]) >= 8  # the same decade first
        known = client.get("/v1/movies/50/similar?k=3").get_json()
        assert known["source"] == "als" and len(known["items"]) == 3
        # Into people's lists: the new movie's factors come from its content (a 1990s horror movie sits among the
        # rated ones), so the people whose ALS vectors score it highest are those who like horror most; and
        # serving.new_slots (1) gives it the last of a person's k places, marked, unless they asked it away.
        picks = read_table(new_paths.new_picks).to_pandas()
        assert set(picks.movie_id) == {NEW_MOVIE} and (picks.score > 0).all() and len(picks) > 100
        ratings = read_table(paths.clean_ratings).to_pandas().merge(movies.to_pandas(), on="movie_id")
        liked = ratings[ratings.rating >= 4]
        horror_share = liked.genres.map(lambda genres: "Horror" in genres).groupby(liked.user_id).mean()
        fans = picks.nlargest(50, "score").user_id
        assert horror_share[fans].mean() > 2 * horror_share.mean()
        fan = int(fans.iloc[0])
        shown = client.get(f"/v1/users/{fan}/recommendations?k=10").get_json()["items"]
        assert len(shown) == 10 and shown[-1]["movie_id"] == NEW_MOVIE and shown[-1]["new"] is True
        assert not any(item.get("new") for item in shown[:-1])
        asked_away = client.get(f"/v1/users/{fan}/recommendations?k=10&exclude={NEW_MOVIE}").get_json()["items"]
        assert NEW_MOVIE not in {item["movie_id"] for item in asked_away} and len(asked_away) == 10
        westerns = client.get(f"/v1/users/{fan}/recommendations?k=10&genre=Western").get_json()["items"]
        assert NEW_MOVIE not in {item["movie_id"] for item in westerns}  # filters hold for new movies too
        none = create_app(local.model_copy(update={"serving": local.serving.model_copy(update={"new_slots": 0})}))
        assert not any(item.get("new") for item in none.test_client().get(
            f"/v1/users/{fan}/recommendations?k=10").get_json()["items"])
        # The new list of a genre: the new horror movie for Horror and for the whole catalogue, none for Western.
        for genre, expected in (("Horror", [NEW_MOVIE]), ("", [NEW_MOVIE]), ("Western", [])):
            fresh = client.get(f"/v1/new?k=5&genre={genre}" if genre else "/v1/new?k=5").get_json()
            assert [item["movie_id"] for item in fresh["items"]] == expected
            assert all(item["new"] is True and 0 < item["score"] <= 1 for item in fresh["items"])
        assert client.get(f"/v1/new?exclude={NEW_MOVIE}").get_json()["items"] == []
        on_the_page(create_app(local), fan, [item["title"] for item in body["items"]])
    finally:
        server.stop()
        shutil.rmtree(new_paths.root)
        mark_latest(config, run_id)  # recommend pointed `latest` at the copy


def on_the_page(app, fan: int, similar: list[str]) -> None:
    """In Chromium: the fan's list ends with the new movie, marked; clicking it shows its content neighbours; the
    popular section's new horror movies are that one."""
    from playwright.sync_api import expect, sync_playwright
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            tab = browser.new_page()
            tab.goto(f"http://127.0.0.1:{server.server_port}/?user={fan}")
            last = tab.locator("#user-results li").last
            expect(tab.locator("#user-results li")).to_have_count(10, timeout=15_000)
            expect(last.locator(".title")).to_have_text("Night of the Creeping Dead (1998)")
            expect(last.locator(".meta")).to_contain_text("new: nobody has rated it yet")
            assert "nobody has rated" not in " ".join(tab.locator("#user-results li .meta").all_inner_texts()[:-1])
            last.locator(".title").click()
            expect(tab.locator("#similar-title")).to_contain_text("nobody has rated it yet", timeout=15_000)
            expect(tab.locator("#similar-results li")).to_have_count(10, timeout=15_000)
            assert [t.rsplit(" (", 1)[0] for t in tab.locator("#similar-results li .title").all_inner_texts()] \
                == similar
            tab.select_option("#popular-genre", "Horror")
            tab.check("#popular-new")
            expect(tab.locator("#popular-results li")).to_have_count(1, timeout=15_000)
            expect(tab.locator("#popular-results li .meta")).to_contain_text("new: nobody has rated it yet")
            browser.close()
    finally:
        server.shutdown()
