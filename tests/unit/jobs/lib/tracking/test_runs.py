"""What a run's files become in MLflow: keys MLflow accepts, every number and nothing else, the gate's decision,
a dataset digest that follows the data."""
import re

from jobs.lib.tracking.runs import dataset_digest, gate_tags, metric_key, run_metrics

MLFLOW_KEY = re.compile(r"^[/\w.\- :]*$")  # what MLflow's tracking store accepts


def test_metric_keys_are_ones_mlflow_accepts_and_stay_distinct():
    keys = [metric_key(k) for k in ("models.als.ndcg@10", "models.als.by_activity.250+.recall@10",
                                    "models.als.by_activity.1-19.users", "cold.genre+tags@10")]
    assert keys == ["models.als.ndcg_at_10", "models.als.by_activity.250plus.recall_at_10",
                    "models.als.by_activity.1-19.users", "cold.genreplustags_at_10"]
    assert all(MLFLOW_KEY.match(k) for k in keys)


def test_every_number_is_a_metric_but_echoed_settings_profile_and_flags_are_not():
    metrics = {"k": 10, "publishable": True, "dataset": "ml-100k", "params": {"implicit": {"rank": 64}},
               "profile": {"movies": 1682}, "gates": [{"gate": "g", "passed": True}],
               "models": {"als": {"ndcg@10": 0.4, "by_activity": {"250+": {"users": 12}}}},
               "fold_in": {"ndcg@10": 0.2, "note": "text"}}
    assert run_metrics(metrics) == {"k": 10.0, "models.als.ndcg_at_10": 0.4,
                                    "models.als.by_activity.250plus.users": 12.0, "fold_in.ndcg_at_10": 0.2}


def test_the_gate_says_what_it_decided_and_why():
    passed = {"publishable": True, "gates": [{"gate": "als > popularity", "passed": True}]}
    failed = {"publishable": False, "gates": [{"gate": "als > popularity", "passed": False},
                                              {"gate": "coverage", "passed": True}]}
    assert gate_tags(passed, forced=False)["gate.decision"] == "publish"
    assert gate_tags(passed, forced=False)["gate.reason"] == "every gate passed"
    refused = gate_tags(failed, forced=False)
    assert refused["gate.decision"] == "refused" and refused["gate.reason"] == "failed: als > popularity"
    assert refused["gate.0"] == "FAILED: als > popularity" and refused["gate.1"] == "passed: coverage"
    assert gate_tags(failed, forced=True)["gate.decision"] == "forced"


def test_the_dataset_digest_follows_the_files_and_the_events_not_the_run():
    manifest = {"run_id": "a", "files": {"u.data": {"sha256": "1"}, "u.item": {"sha256": "2"}},
                "events": {"archived": {"last_id": "5-0"}}}
    same_data_other_run = {**manifest, "run_id": "b", "ingested_at": "later"}
    assert dataset_digest(manifest) == dataset_digest(same_data_other_run)
    assert dataset_digest(manifest) != dataset_digest({**manifest, "files": {"u.data": {"sha256": "9"},
                                                                             "u.item": {"sha256": "2"}}})
    assert dataset_digest(manifest) != dataset_digest({**manifest, "events": {"archived": {"last_id": "6-0"}}})
    assert dataset_digest({**manifest, "events": {"archived": None}})  # no events archived: still a digest
