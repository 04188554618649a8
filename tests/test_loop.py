"""The loop, end to end on ML-100K with real Redis and Spark: a new person rates movies through the service,
gets movies like them at once, a run that fails after archiving keeps the events, a rerun archives nothing new,
and the next run trains on every event exactly once and publishes a personal list for the newcomer."""
import time

import pyarrow.parquet as pq
import pytest

from jobs import ingest, publish
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.run_layout import run_paths
from jobs.pipeline import run_pipeline
from schemas import redis_keys as rk
from schemas.archive import committed_batches
from schemas.storage import read_json
from serving.app import create_app
from tests.support import RedisServer

TOKEN = "loop-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEWCOMER = 900_100
# Star Wars, Empire, Jedi, Raiders, Last Crusade, Terminator, T2, Aliens, Alien, Blade Runner
SCI_FI_ADVENTURE = (50, 172, 181, 174, 210, 195, 96, 176, 183, 89)
LIGHT_ALS = {"als.implicit.rank": 32, "als.implicit.max_iter": 8, "als.explicit.rank": 8,
             "als.explicit.max_iter": 8, "als.explicit.implicit_feature": False}


@pytest.fixture(scope="module")
def loop(pipeline_run, spark, make_config, tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("loop-redis")).start()
    shared_config, shared_run, _, _ = pipeline_run
    publish.run(shared_config.model_copy(update={"redis": shared_config.redis.model_copy(
        update={"url": server.url})}), shared_run, spark=spark)
    config = make_config(redis__url=server.url, events__archive=True, events__token=TOKEN, **LIGHT_ALS)
    yield config, server
    server.stop()


def recommendations(config, user: int) -> dict:
    return create_app(config).test_client().get(f"/v1/users/{user}/recommendations?k=10").get_json()


def test_ratings_come_back_and_the_next_run_learns_from_them_once(loop, spark):
    config, server = loop
    stream = server.client()
    client = create_app(config).test_client()
    ratings = [{"user_id": NEWCOMER, "movie_id": m, "type": "rating", "rating": 5 if i < 6 else 4}
               for i, m in enumerate(SCI_FI_ADVENTURE)]
    shown = client.get("/v1/movies/50/similar?k=3").get_json()
    clicks = [{"user_id": NEWCOMER, "movie_id": i["movie_id"], "type": "click", "request_id": shown["request_id"]}
              for i in shown["items"]]
    assert client.post("/v1/events", json={"events": ratings + clicks}, headers=AUTH).status_code == 202

    # At once: movies like the ones just rated, none of them.
    now = recommendations(config, NEWCOMER)
    assert now["fallback"] == "similar_to_recent" and len(now["items"]) == 10
    assert not set(SCI_FI_ADVENTURE) & {i["movie_id"] for i in now["items"]}

    # A run that fails after ingest archived the events: they are safe on disk and gone from the stream.
    failing = config.model_copy(update={"validation": config.validation.model_copy(update={"min_ratings": 10**9})})
    with pytest.raises(JobError, match="expectation"):
        run_pipeline(failing, "loop_fails", spark=spark)
    archive = run_paths(config, "loop_fails")
    batch = read_json(archive.events)["batch"]
    assert batch["rows"] == 13 and stream.xlen(rk.EVENTS) == 0

    # Two more clicks arrive, and a dismissal of the best of their lists; a rerun of the failed run archives
    # nothing new and leaves them in the stream.
    elsewhere = [m for m in range(1, 10) if m not in {i["movie_id"] for i in shown["items"]}][:2]
    clicked = {i["movie_id"] for i in shown["items"]}
    dismissed = next(i["movie_id"] for i in now["items"] if i["movie_id"] not in clicked)
    more = [{"user_id": NEWCOMER, "movie_id": m, "type": "click"} for m in elsewhere]
    more.append({"user_id": NEWCOMER, "movie_id": dismissed, "type": "dismiss"})
    assert client.post("/v1/events", json={"events": more}, headers=AUTH).status_code == 202
    assert dismissed not in {i["movie_id"] for i in recommendations(config, NEWCOMER)["items"]}  # at once
    rerun = ingest.run(config, "loop_fails", spark=spark)
    assert rerun["events"]["archived"] == batch and stream.xlen(rk.EVENTS) == 3

    # The next run trains on every event exactly once and publishes the newcomer's own list.
    run_pipeline(config, "loop_learns", spark=spark, publish_too=True)
    learned = read_json(run_paths(config, "loop_learns").clean_report)["events"]
    assert learned["ratings_in"] == 10 and learned["ratings_kept"] == 10
    assert learned["clicks_in"] == 5 and learned["click_pairs"] == 5, learned
    assert learned["dismissals_in"] == 1 and learned["dismissed_pairs"] == 1, learned
    files = read_json(run_paths(config, "loop_learns").events)["files"]
    ids = [i for f in files for i in pq.read_table(f).column("stream_id").to_pylist()]
    assert len(ids) == len(set(ids)) == 16
    assert [b["rows"] for b in committed_batches(str(archive.data_root) + "/events/archive")] == [13, 3]
    # Dismissed for good: the version's own list for them leaves it out, whatever the model scores.
    published = pq.read_table(run_paths(config, "loop_learns").user_recs).to_pandas()
    assert len(published[published.user_id == NEWCOMER]) == config.recommend.top_n
    assert dismissed not in set(published[published.user_id == NEWCOMER].movie_id)
    assert stream.xlen(rk.EVENTS) == 0

    time.sleep(config.serving.pointer_ttl)
    after = recommendations(config, NEWCOMER)
    assert "fallback" not in after and after["version"].endswith("loop_learns")
    assert len(after["items"]) == 10 and not set(SCI_FI_ADVENTURE) & {i["movie_id"] for i in after["items"]}
