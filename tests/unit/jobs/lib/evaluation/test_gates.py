"""The quality gate, directly: lift over popularity, and the drop against the live version."""
from conf.settings import load_config
from jobs.lib.evaluation.gates import quality_gate


def metrics(als: float, popularity: float = 0.25, dataset: str = "ml-100k", k: int = 10) -> dict:
    return {"dataset": dataset, "k": k,
            "models": {"als": {f"ndcg@{k}": als}, "popularity": {f"ndcg@{k}": popularity}}}


def live(ndcg: float, dataset: str = "ml-100k", k: int = 10) -> dict:
    return {"version": "v-live", "dataset": dataset, "k": k, "metrics": {f"ndcg@{k}": ndcg}}


CONFIG = load_config(overrides={"gates.min_ndcg_lift_over_popularity": 0.05, "gates.max_ndcg_drop_vs_live": 0.02})


def test_als_must_beat_popularity_by_the_lift():
    assert quality_gate(metrics(0.31), None, CONFIG)[0] is True
    ok, checks = quality_gate(metrics(0.29), None, CONFIG)
    assert ok is False and len(checks) == 1
    assert checks[0]["gate"] == "als ndcg@10 > popularity ndcg@10 + 0.05" and checks[0]["passed"] is False


def test_a_drop_against_the_live_version_beyond_tolerance_stops_publication():
    ok, checks = quality_gate(metrics(0.45), live(0.48), CONFIG)  # 0.03 below live, 0.02 tolerated
    assert ok is False
    assert [c["passed"] for c in checks] == [True, False]
    assert checks[1]["live"] == 0.48 and checks[1]["live_version"] == "v-live"
    assert quality_gate(metrics(0.465), live(0.48), CONFIG)[0] is True  # within tolerance
    assert quality_gate(metrics(0.60), live(0.48), CONFIG)[0] is True   # better than live


def test_live_versions_of_another_dataset_or_k_are_not_compared():
    for other in (live(0.9, dataset="ml-1m"), live(0.9, k=20), {"version": "v", "dataset": "ml-100k", "k": 10}):
        ok, checks = quality_gate(metrics(0.45), other, CONFIG)
        assert ok is True and len(checks) == 1
