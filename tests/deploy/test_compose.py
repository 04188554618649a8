"""docker-compose.yml, checked structurally (no Docker engine runs here): services, pinned images, health
checks, loopback ports, and that what it mounts and runs exists in the repository."""
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_the_whole_stack_is_described():
    assert {"redis", "spark-master", "spark-worker", "airflow-db", "airflow-api-server", "airflow-scheduler",
            "airflow-dag-processor", "reco-service", "prometheus", "grafana"} <= set(SERVICES)


def test_airflow_runs_on_postgresql_with_one_jwt_secret_for_every_component():
    """SQLite serves one process; three Airflow containers need PostgreSQL, and one JWT secret, so that the
    api-server accepts the tokens of the scheduler's task workers (tests/dags/test_dag_under_scheduler.py runs
    the same settings on a real PostgreSQL)."""
    components = [SERVICES[name] for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor")]
    for service in components:
        env = service["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://airflow:")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@airflow-db/airflow")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+psycopg_async://")
        assert service["depends_on"]["airflow-db"] == {"condition": "service_healthy"}
    assert len({s["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] for s in components}) == 1
    assert components[0]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")


def test_prometheus_scrapes_the_service_and_grafana_is_provisioned():
    prometheus = yaml.safe_load((REPO / "conf" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert targets == ["reco-service:8000"] and "reco-service" in SERVICES
    assert "./conf/prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    datasource = yaml.safe_load((REPO / "conf" / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
                                .read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["uid"] == "prometheus"
    dashboard = json.loads((REPO / "conf" / "grafana" / "dashboards" / "reco-overview.json").read_text())
    assert all(p["datasource"]["uid"] == "prometheus" and p["targets"] for p in dashboard["panels"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_is_pinned_healthchecked_and_loopback_only(name):
    service = SERVICES[name]
    image = service.get("image", "")
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: image {image!r} has no tag"
    assert not image.endswith(":latest")
    assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for port in service.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_builds_and_mounts_exist():
    dockerfile = (REPO / "conf" / "Dockerfile").read_text()
    for name, service in SERVICES.items():
        if "build" in service:
            assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
            assert f"AS {service['build']['target']}" in dockerfile
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                if not source.startswith("--"):
                    assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert re.search(r"FROM apache/airflow:[\d.]+-python3\.11", dockerfile)
    from pyspark import __version__ as pyspark_version
    assert f"FROM apache/spark:{pyspark_version}-" in dockerfile  # executors match the driver's Spark
    for base in re.findall(r"^FROM (\S+)", dockerfile, re.M):
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*", base) and "latest" not in base


def test_commands_point_at_real_files():
    assert SERVICES["reco-service"]["build"]["target"] == "service"
    assert "serving/gunicorn.conf.py" in (REPO / "conf" / "Dockerfile").read_text()
    airflow_env = SERVICES["airflow-scheduler"]["environment"]
    assert airflow_env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/reco/dags"
    assert (REPO / "dags" / "movielens_recommendations.py").is_file()
    assert "spark://spark-master" in airflow_env["AIRFLOW_CONN_SPARK_DEFAULT"]
    assert airflow_env["RECO_CONFIG"].removeprefix("/opt/reco/") == "conf/local.yaml"
