"""The experiment statistics on simulated data where the truth is known, on fixed seeds: A/A experiments say
"different" about 5% of the time, a real lift is found, the sample-ratio check passes a fair split and catches
a skewed one, clustering by user matters, and the assignment is stable and follows the share."""
import numpy as np
import orjson
import pytest

from benchmarks.simulated_people import simulated_totals
from conf.settings import ExperimentSettings
from jobs.lib.loop import experiment_stats as es
from schemas.experiments import (
    CONTROL,
    EXPOSURE_COLUMNS,
    TREATMENT,
    arm_of,
    from_stream_entry,
    is_sampled,
    to_stream_fields,
    to_stream_value,
)

SETTINGS = ExperimentSettings()
NO_GUARDRAILS: dict = {}


def judge(totals: dict, share: float, settings=SETTINGS) -> dict:
    return es.judge(totals["arm"], totals["exposures"], totals["clicked"], totals["conversions"], share,
                    NO_GUARDRAILS, settings)


def test_aa_experiments_say_different_about_five_percent_of_the_time():
    runs = 200
    verdicts = [judge(simulated_totals(seed, 2000, 0.5), 0.5) for seed in range(runs)]
    false_positives = sum(v["metrics"]["ctr_per_exposure"]["p_value"] < 0.05 for v in verdicts)
    assert 0.02 * runs <= false_positives <= 0.10 * runs, false_positives
    assert sum(v["decision"] != es.KEEP_RUNNING for v in verdicts) == false_positives
    assert sum(not v["srm"]["passed"] for v in verdicts) <= 2  # at srm_alpha 0.001, about 0.2 of 200


def test_a_real_lift_is_found_and_promoted_and_a_loss_rolled_back():
    better = judge(simulated_totals(1, 4000, 0.5, treatment_lift=0.25), 0.5)
    assert better["decision"] == es.PROMOTE and better["metrics"]["ctr_per_exposure"]["p_value"] < 0.01
    ctr = better["metrics"]["ctr_per_exposure"]
    assert ctr["ci_low"] > 0 and 0.1 < ctr["lift"] < 0.4
    worse = judge(simulated_totals(2, 4000, 0.5, treatment_lift=-0.25), 0.5)
    assert worse["decision"] == es.ROLL_BACK


def test_too_little_evidence_keeps_running_and_says_how_many_users_are_needed():
    settings = ExperimentSettings(min_detectable_lift=0.2)
    small = judge(simulated_totals(3, 300, 0.5, treatment_lift=0.2), 0.5, settings)
    assert small["decision"] == es.KEEP_RUNNING
    needed = small["power"]["users_needed"]
    assert needed > 300 and "users in all are needed" in small["reasons"][0]
    # The estimate holds up: with that many users, a 20% lift is found most of the time (80% power).
    found = sum(judge(simulated_totals(100 + s, needed, 0.5, treatment_lift=0.2), 0.5, settings)["decision"]
                == es.PROMOTE for s in range(40))
    assert 0.6 * 40 <= found <= 0.95 * 40, found


def test_sample_ratio_check_passes_a_90_10_split_and_catches_a_skewed_one():
    fair = [judge(simulated_totals(seed, 20_000, 0.1), 0.1)["srm"] for seed in range(20)]
    assert sum(s["passed"] for s in fair) >= 19
    assert all(abs(s["observed_share"] - 0.1) < 0.01 for s in fair)
    skewed = judge(simulated_totals(7, 20_000, 0.1, lose_treatment=0.1), 0.1)
    assert not skewed["srm"]["passed"] and skewed["srm"]["p_value"] < 0.001
    assert skewed["decision"] == es.ROLL_BACK and "sample ratio mismatch" in skewed["reasons"][0]


def test_clustering_by_user_matters():
    """Heavy users who click a lot: treating their exposures as independent (a naive z-test) underestimates the
    variance; the delta method over users does not."""
    rng = np.random.default_rng(0)
    users = 500
    exposures = np.where(rng.random(users) < 0.1, 200, 2).astype(float)
    clicked = rng.binomial(exposures.astype(int), rng.beta(1, 4, users)).astype(float)
    _, delta_variance, _ = es.ratio_by_arm(clicked, exposures)
    p = clicked.sum() / exposures.sum()
    naive_variance = p * (1 - p) / exposures.sum()
    assert delta_variance > 3 * naive_variance


def test_guardrails_roll_back_a_faster_failing_treatment():
    totals = simulated_totals(4, 4000, 0.5, treatment_lift=0.25)
    slow = es.judge(totals["arm"], totals["exposures"], totals["clicked"], totals["conversions"], 0.5,
                    {CONTROL: {"error_rate": 0.0, "p99_ms": 5.0}, TREATMENT: {"error_rate": 0.0, "p99_ms": 50.0}},
                    SETTINGS)
    assert slow["decision"] == es.ROLL_BACK and "p99_latency" in slow["reasons"][0]
    failing = es.judge(totals["arm"], totals["exposures"], totals["clicked"], totals["conversions"], 0.5,
                       {CONTROL: {"error_rate": 0.0, "p99_ms": 5.0}, TREATMENT: {"error_rate": 0.05, "p99_ms": 5.0}},
                       SETTINGS)
    assert failing["decision"] == es.ROLL_BACK and "error_rate" in failing["reasons"][0]


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_assignment_is_stable_and_follows_the_share(share):
    experiment = {"salt": "s1", "share": share}
    arms = [arm_of(experiment, u) for u in range(1, 20_001)]
    assert arms == [arm_of(experiment, u) for u in range(1, 20_001)]  # the same user, the same arm
    assert abs(arms.count(TREATMENT) / len(arms) - share) < 0.01
    other = [arm_of({"salt": "s2", "share": share}, u) for u in range(1, 20_001)]
    assert other != arms  # a new experiment splits afresh


def test_sampling_is_per_user_and_independent_of_the_arm():
    experiment = {"salt": "s1", "share": 0.5, "sample_rate": 0.2}
    users = range(1, 20_001)
    sampled = [u for u in users if is_sampled(experiment, u)]
    assert abs(len(sampled) / 20_000 - 0.2) < 0.01
    treated = sum(arm_of(experiment, u) == TREATMENT for u in sampled) / len(sampled)
    assert abs(treated - 0.5) < 0.03
    assert all(is_sampled({**experiment, "sample_rate": 1.0}, u) for u in range(1, 100))


def test_exposures_encoded_one_by_one_read_back_as_one_batch():
    """The service encodes each exposure as its request ends and the flusher joins them into one stream entry:
    the archive must read back every exposure of that entry, fields intact, and nothing but the columns."""
    exposures = [{"request_id": f"r{i}", "ts": 1_700_000_000 + i, "user_id": i, "experiment": "exp-v2",
                  "arm": TREATMENT if i % 2 else CONTROL, "version": "v2" if i % 2 else "v1",
                  "endpoint": "/v1/users/<user_id>/recommendations", "items": [50, 181 + i], "status": 200,
                  "latency_ms": 0.5 + i, "fallback": "popular" if i == 2 else None, "not_a_column": "x"}
                 for i in range(1, 4)]
    fields = to_stream_fields([to_stream_value(e) for e in exposures])
    rows = from_stream_entry(b"1700000000000-0", {key.encode(): value for key, value in fields.items()})
    assert [row["request_id"] for row in rows] == ["r1", "r2", "r3"]
    assert all(row["stream_id"] == "1700000000000-0" for row in rows)
    assert rows[1]["fallback"] == "popular" and rows[0]["fallback"] is None
    assert [row["arm"] for row in rows] == [TREATMENT, CONTROL, TREATMENT]
    assert [row["items"] for row in rows] == [[50, 182], [50, 183], [50, 184]]
    stored = orjson.loads(fields["exposures"])  # only the archive's columns travel
    assert [list(e) for e in stored] == [list(EXPOSURE_COLUMNS[1:])] * 3
