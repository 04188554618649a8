"""An A/B experiment end to end on ML-100K, with real Redis, gunicorn and Spark: the popularity baseline's lists
live as control, the ALS version published as a candidate for half the users; simulated people (their hidden
tastes are their held-out test ratings) use the real service over HTTP; ingest archives the exposures and the
clicks; the judging job finds ALS better with p < 0.01 and says promote; applying it makes ALS live."""
import time

import pandas as pd
import pytest
import requests

from benchmarks.simulated_people import SimulatedPeople, held_out_run, hidden_tastes
from jobs import experiment, ingest, publish
from jobs.lib.loop import experiment_control as experiments
from jobs.lib.publication.versions import check_published_run, prune
from jobs.lib.runtime.leases import Lease
from jobs.lib.runtime.run_layout import run_paths
from schemas import redis_keys as rk
from schemas.experiments import CONTROL, TREATMENT, arm_of, logged, public_view
from schemas.storage import exists, read_json
from tests.support import GunicornService, RedisServer, wait_until

TOKEN = "experiment-token"


@pytest.fixture(scope="module")
def ab(pipeline_run, spark, make_config, tmp_path_factory):
    """(config, service URL, redis server, control version, treatment version, the experiment record)."""
    shared_config, shared_run, shared_paths, _ = pipeline_run
    server = RedisServer(tmp_path_factory.mktemp("experiment-redis")).start()
    # The latency guardrail is relaxed here: the suite's other worker runs JVMs on the same two cores, so one arm's
    # p99 can be 1.5x the other's from the machine's load alone (a CI run rolled ALS back that way). The
    # guardrail itself is tested in tests/unit/test_experiment_stats.py; this test is about the clicks.
    config = make_config(redis__url=server.url, events__archive=True, events__token=TOKEN,
                         experiments__max_p99_ratio=10.0)
    for run_id, model in (("popular_run", "popularity"), ("als_run", "als")):
        held_out_run(config, shared_paths, run_id, model, spark)
    control = publish.run(config, "popular_run", spark=spark)["version"]
    treatment_report = publish.run(config, "als_run", spark=spark, candidate=True, share=0.5, salt="test-ab")
    service = GunicornService(server.url, tmp_path_factory.mktemp("experiment-service"),
                              env={"RECO_EVENTS_TOKEN": TOKEN}).start()
    yield config, service.base_url, server, control, treatment_report["version"], treatment_report["experiment"]
    service.stop()
    server.stop()


def settled_exposures(stream, at_least: int) -> int:
    """The exposures in the log once every worker has written its buffer: at least `at_least`, and the same
    count over a whole flush interval and more (each worker writes every experiments.exposure_flush_s)."""
    def settled():
        before = logged(stream.xrange(rk.EXPOSURES))
        time.sleep(0.5)
        return before >= at_least and logged(stream.xrange(rk.EXPOSURES)) == before
    wait_until(settled, 15, interval=0, what="the exposure log to settle")
    return logged(stream.xrange(rk.EXPOSURES))


def test_a_candidate_is_registered_but_not_live(ab):
    config, url, server, control, treatment, running = ab
    client = server.client()
    assert client.get(rk.LIVE).decode() == control
    assert running == public_view(experiments.current(client))
    assert running["control"] == control and running["treatment"] == treatment and running["share"] == 0.5
    version = requests.get(f"{url}/v1/version?user_id=1").json()
    assert version["version"] == control and version["experiment"]["id"] == running["id"]
    assert version["experiment"]["arm_version"] in (control, treatment) and "salt" not in version["experiment"]


def test_each_user_sees_one_arm_and_its_version(ab):
    config, url, server, control, treatment, running = ab
    record = experiments.current(server.client())
    arms = {}
    for user in range(1, 41):
        answers = [requests.get(f"{url}/v1/users/{user}/recommendations?k=5").json() for _ in range(2)]
        assert answers[0]["arm"] == answers[1]["arm"] == arm_of(record, user)
        assert answers[0]["version"] == (treatment if answers[0]["arm"] == TREATMENT else control)
        assert answers[0]["experiment"] == running["id"]
        arms[user] = answers[0]["arm"]
    assert set(arms.values()) == {CONTROL, TREATMENT}
    # A user no version knows is assigned too, and the similar-movie endpoint follows the user's arm.
    stranger = requests.get(f"{url}/v1/users/2000000/recommendations").json()
    assert stranger["arm"] == arm_of(record, 2_000_000) and stranger["fallback"] == "popular"
    similar = requests.get(f"{url}/v1/movies/50/similar?user_id=3").json()
    assert similar["arm"] == arms[3] and similar["version"] == (treatment if arms[3] == TREATMENT else control)
    plain = requests.get(f"{url}/v1/movies/50/similar").json()
    assert plain["experiment"] is None and plain["version"] == control
    assert requests.get(f"{url}/v1/movies/50/similar?user_id=x").status_code == 400


def test_the_page_shows_the_experiment_and_the_viewers_arm(ab):
    from playwright.sync_api import (  # expect's waits work under the page's policy
        expect,
        sync_playwright,
    )

    from tests.serving.test_web_page import ARGS, CHROMIUM
    config, url, server, control, treatment, running = ab
    record = experiments.current(server.client())
    user = next(u for u in range(1, 100) if arm_of(record, u) == TREATMENT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{url}/")
        expect(page.locator("#version")).to_contain_text("experiment", timeout=15_000)
        assert f"experiment {running['id']} running: version {treatment} for 50% of users" in \
            page.inner_text("#version")
        page.fill("#user-id", str(user))
        page.click("#user-form button")
        # The page may still show the user it loaded first: wait for this user's answer.
        expect(page.locator("#user-experiment")).to_contain_text(f"user {user} is", timeout=15_000)
        assert page.inner_text("#user-experiment") == \
            f"Experiment {running['id']}: user {user} is in the treatment arm (version {treatment})."
        browser.close()


def test_retention_keeps_the_versions_an_experiment_serves(ab):
    config, url, server, control, treatment, running = ab
    client = server.client()
    client.zadd(rk.VERSIONS, {"newer-1": 4e9, "newer-2": 4e9 + 1})  # two newer versions (registry only)
    try:
        with Lease(client, "publish", "test-prune") as lease:
            assert prune(client, 2, lease) == []
    finally:
        client.zrem(rk.VERSIONS, "newer-1", "newer-2")
    assert client.exists(rk.key(control, "meta")) and client.exists(rk.key(treatment, "meta"))


def test_people_prefer_als_and_the_judgement_promotes_it(ab, pipeline_run, spark):
    config, url, server, control, treatment, running = ab
    _, _, shared_paths, _ = pipeline_run
    tastes = hidden_tastes(pd.read_parquet(shared_paths.split_test))
    people = SimulatedPeople(url, TOKEN, tastes, seed=7)
    seen = people.run(sorted(tastes), visits=2)
    shown = seen["control_exposures"] + seen["treatment_exposures"]
    stream = server.client()
    waiting = settled_exposures(stream, at_least=shown)

    metrics = requests.get(f"{url}/metrics").text
    assert f'reco_exposures_total{{arm="treatment",experiment="{running["id"]}",outcome="logged"}}' in metrics
    assert f'reco_experiment_request_duration_seconds_count{{arm="control",endpoint="/v1/users/<user_id>/' \
           f'recommendations",experiment="{running["id"]}",status="200"}}' in metrics
    assert f'reco_experiment_info{{control="{control}",experiment="{running["id"]}"' in metrics

    manifest = ingest.run(config, "judge_1", spark=spark)
    assert manifest["exposures"]["rows"] == waiting and stream.xlen(rk.EXPOSURES) == 0  # archived, then trimmed
    report = experiment.run(config, "judge_1", spark=spark)
    ctr = report["metrics"]["ctr_per_exposure"]
    assert report["decision"] == "promote", (report["reasons"], ctr)
    assert ctr["p_value"] < 0.01 and ctr["treatment"] > ctr["control"] and ctr["ci_low"] > 0
    assert report["srm"]["passed"] and report["users_in_both_arms"] == 0
    assert report["users"]["control"] + report["users"]["treatment"] >= len(tastes)
    assert report["exposures"]["treatment"] >= seen["treatment_exposures"]
    assert report["clicks"]["treatment"] == seen["treatment_clicks"]  # every click attributed, none twice
    assert all(check["passed"] for check in report["guardrails"].values()) and report["guardrails"]
    assert report["applied"] is None and server.client().get(rk.LIVE).decode() == control  # judged, not acted on
    paths = run_paths(config, "judge_1")
    assert read_json(paths.experiment_report)["decision"] == "promote" and exists(paths.experiment_html)

    # Acting on it: the treatment goes live, the experiment ends; the service follows within its pointer TTL.
    applied = experiment.run(config, "judge_2", spark=spark, apply="all")
    assert applied["applied"] == "promoted" and server.client().get(rk.LIVE).decode() == treatment
    assert experiments.current(server.client()) is None
    assert experiments.history(server.client())[0]["outcome"] == "promoted"
    wait_until(lambda: requests.get(f"{url}/v1/users/1/recommendations").json()["experiment"] is None, 5,
               what="the service to see the end of the experiment")
    answer = requests.get(f"{url}/v1/users/1/recommendations").json()
    assert answer["version"] == treatment and answer["arm"] is None

    # Another candidate, aborted by hand: control (now the ALS version) stays live.
    started = experiments.start(server.client(), control, 0.1)
    assert started["control"] == treatment
    ended = publish.run(config, None, abort=True)
    assert ended["outcome"] == "aborted" and server.client().get(rk.LIVE).decode() == treatment
    with pytest.raises(Exception, match="no experiment is running"):
        publish.run(config, None, promote=True)


def test_a_canary_is_held_against_then_rolled_back_by_the_next_judgement(ab, pipeline_run, spark):
    """Canary release mode: a run publishes a candidate for 30% of users; the next run's version waits (held)
    while it is undecided; once people have used it, the judgement (applied to canaries, as the DAG does)
    rolls the worse popularity lists back and the ALS version stays live."""
    config, url, server, control, treatment, running = ab
    _, _, shared_paths, _ = pipeline_run
    client = server.client()
    live = client.get(rk.LIVE).decode()
    canary = config.model_copy(update={"experiments": config.experiments.model_copy(
        update={"release": "canary", "canary_share": 0.3})})
    first = publish.run(canary, "popular_run", spark=spark, salt="test-canary")
    assert first["candidate"] and first["experiment"]["kind"] == "canary" and first["experiment"]["share"] == 0.3
    assert client.get(rk.LIVE).decode() == live
    assert check_published_run(canary, "popular_run")["candidate"] is True  # the DAG's smoke check of a candidate
    held = publish.run(canary, "als_run", spark=spark)
    assert held["experiment"] == first["experiment"]["id"] and "still running" in held["held"]
    assert "held" in check_published_run(canary, "als_run")
    waiting = experiment.run(canary, "canary_1", spark=spark, apply="canary")
    assert waiting["decision"] == "keep_running" and waiting["applied"] is None  # no exposures yet

    time.sleep(config.serving.pointer_ttl + 0.5)  # the service sees the canary
    people = SimulatedPeople(url, TOKEN, hidden_tastes(pd.read_parquet(shared_paths.split_test)), seed=11)
    seen = people.run(sorted(people.tastes), visits=5)
    stream = server.client()
    settled_exposures(stream, at_least=seen["control_exposures"] + seen["treatment_exposures"])
    ingest.run(canary, "canary_2", spark=spark)
    judged = experiment.run(canary, "canary_2", spark=spark, apply="canary")
    assert judged["srm"]["passed"] and judged["srm"]["observed_share"] == pytest.approx(0.3, abs=0.05)
    assert judged["decision"] == "roll_back", (judged["reasons"], judged["metrics"]["ctr_per_exposure"])
    assert judged["applied"] == "rolled_back" and client.get(rk.LIVE).decode() == live
    assert experiments.current(client) is None and experiments.history(client)[0]["outcome"] == "aborted"
