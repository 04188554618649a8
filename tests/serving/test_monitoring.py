"""Monitoring with the real tools: promtool checks the Prometheus config and the alert rules and runs their
unit tests (each alert fires and stays quiet where it should); a real Prometheus on loopback scrapes the real
service and its HTTP API shows the series the alerts use."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import SERVICE_EVENTS_TOKEN
from tests.support import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "conf" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    if not shutil.which("promtool"):
        pytest.fail("promtool is not installed: `make test` installs Debian's prometheus package")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=PROM)


def test_config_and_rules_are_valid():
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0 and "SUCCESS: 8 rules found" in rules.stdout, rules.stdout + rules.stderr


def test_every_alert_fires_and_stays_quiet_where_it_should():
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for case in yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
              for t in case["alert_rule_test"]}
    alerts = {r["alert"] for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    assert tested == alerts


def test_prometheus_scrapes_the_service_and_has_the_alerts_series(service, pipeline_run, tmp_path):
    base, config, version = service
    # What the DAG's report_run task records at the end of a run (here: the shared run, as if it just ended).
    from jobs.lib.runtime.run_summary import record, summarize
    _, run_id, _, _ = pipeline_run
    record(config, summarize(config, run_id, [{"task_id": "publish", "state": "success", "duration": 12.5},
                                              {"task_id": "smoke_check", "state": "success", "duration": 0.3}]))
    for path in ("/v1/users/1/recommendations", "/v1/users/999999/recommendations", "/v1/popular", "/v1/movies/1"):
        requests.get(f"{base}{path}", timeout=5)
    auth = {"Authorization": f"Bearer {SERVICE_EVENTS_TOKEN}"}
    # Two speed layers sharing the people, neither reading: the one created before the click lags by it, the
    # other does not; the service reports the larger lag.
    import redis

    from schemas import redis_keys as rk
    stream = redis.Redis.from_url(config.redis.url)
    stream.delete(rk.EVENTS)
    stream.xgroup_create(rk.EVENTS, rk.speed_group(1, 2), id="$", mkstream=True)
    for event in ({"user_id": 1, "movie_id": 50, "type": "click"}, {"user_id": 1, "movie_id": 0, "type": "click"}):
        requests.post(f"{base}/v1/events", json={"events": [event]}, headers=auth, timeout=5)
    stream.xgroup_create(rk.EVENTS, rk.speed_group(2, 2), id="$")
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(PROM / "alerts.yml")]
    config["scrape_configs"] = config["scrape_configs"][:1]  # the service (no speed layer runs here)
    config["scrape_configs"][0]["static_configs"] = [{"targets": [base.removeprefix("http://")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        def value(query: str):
            result = requests.get(f"{api}/query", params={"query": query}, timeout=5).json()["data"]["result"]
            return result[0] if result else None

        wait_until(lambda: value("up{job='reco-service'}") and value("up{job='reco-service'}")["value"][1] == "1",
                   60, 0.5, "Prometheus scraping the service")
        assert value("reco_store_up")["value"][1] == "1"
        info = value("reco_live_version_info")
        assert info["metric"]["version"] == version and info["metric"]["dataset"] == "ml-100k"
        assert 0 <= float(value("reco_live_version_age_seconds")["value"][1]) < 3600
        assert 0.3 < float(value('reco_live_version_metric{metric="ndcg@10"}')["value"][1]) < 1
        assert value("reco_event_backlog") is not None and value("reco_event_backlog_limit") is not None
        assert value("reco_speed_layer_lag")["value"][1] == "1"
        assert value('reco_http_request_duration_seconds_count{endpoint="/v1/popular",status="200"}')
        assert value("reco_batch_last_run_success")["value"][1] == "1"
        assert value('reco_batch_task_duration_seconds{task="publish"}')["value"][1] == "12.5"
        assert value('reco_batch_rows{table="clean_ratings"}')["value"][1] == "100000"
        assert 0.3 < float(value('reco_batch_last_run_metric{metric="ndcg@10"}')["value"][1]) < 1
        rules = requests.get(f"{api}/rules", timeout=5).json()["data"]["groups"][0]["rules"]
        assert len(rules) == 8 and all(r["health"] == "ok" for r in rules)
        # Every series an alert reads is one this service exports (the alerts cannot watch a typo); the one
        # alert on Prometheus's own `up` names the scrape job this configuration has.
        exported = set(requests.get(f"{api}/label/__name__/values", timeout=5).json()["data"])
        for rule in rules:
            names = set(re.findall(r"\breco_[a-z_]+", rule["query"]))
            if rule["name"] == "RecoServiceDown":
                assert 'up{job="reco-service"}' in rule["query"]
                assert config["scrape_configs"][0]["job_name"] == "reco-service"
                continue
            assert names and names <= exported, (rule["name"], names - exported)

        def service_down_alerts():  # pending or firing
            alerts = requests.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "RecoServiceDown"]
        wait_until(lambda: not service_down_alerts(), 10, 0.5, "RecoServiceDown quiet while scrapes succeed")
        # And every series the Grafana dashboard draws (an experiment's only exist while one runs: those are
        # names the service defines, and tests/jobs/test_experiment.py finds them on /metrics).
        dashboard = json.loads((REPO / "conf" / "grafana" / "dashboards" / "reco-overview.json").read_text())
        defined = (REPO / "serving" / "observability.py").read_text()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                names = set(re.findall(r"\breco_[a-z_]+", target["expr"]))
                if panel["title"].startswith("Experiment:"):
                    bases = {re.sub(r"_(count|bucket|sum|total)$", "", n) for n in names}
                    assert names and all(f'"{b}' in defined for b in bases), (panel["title"], bases)
                else:
                    assert names and names <= exported, (panel["title"], names - exported)
                answer = requests.get(f"{api}/query", params={"query": target["expr"]}, timeout=5).json()
                assert answer["status"] == "success", (panel["title"], answer)
    finally:
        prometheus.terminate()
        prometheus.wait(15)
