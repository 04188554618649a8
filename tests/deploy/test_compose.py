"""docker-compose.yml, checked structurally (no Docker engine runs here): services, pinned images, health
checks, loopback ports, and that what it mounts and runs exists in the repository."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_the_whole_stack_is_described():
    assert {"redis", "spark-master", "spark-worker", "airflow-db", "airflow-api-server", "airflow-scheduler",
            "airflow-dag-processor", "reco-service", "prometheus", "grafana", "mlflow"} <= set(SERVICES)


def test_mlflow_keeps_its_store_on_the_postgresql_and_the_jobs_record_into_it():
    """A database of its own (created on a new volume by the init script), artifacts on a volume, its own image
    (the service's image has no MLflow), and every Airflow component pointing the runs at it."""
    mlflow = SERVICES["mlflow"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].endswith("@airflow-db/mlflow")
    assert "CREATE DATABASE mlflow" in (REPO / "conf" / "mlflow" / "create-database.sql").read_text()
    assert any(v.startswith("./conf/mlflow/create-database.sql:/docker-entrypoint-initdb.d/")
               for v in SERVICES["airflow-db"]["volumes"])
    assert "mlflow-artifacts:/mlflow-artifacts" in mlflow["volumes"] and "/mlflow-artifacts" in mlflow["command"]
    assert mlflow["build"]["target"] == "mlflow" and SERVICES["reco-service"]["build"]["target"] == "service"
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        assert SERVICES[name]["environment"]["RECO_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


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
    assert targets == ["reco-service:8000", "speed-layer:9100"] and {"reco-service", "speed-layer"} <= set(SERVICES)
    assert "./conf/prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    datasource = yaml.safe_load((REPO / "conf" / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
                                .read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["uid"] == "prometheus"
    dashboard = json.loads((REPO / "conf" / "grafana" / "dashboards" / "reco-overview.json").read_text())
    assert all(p["datasource"]["uid"] == "prometheus" and p["targets"] for p in dashboard["panels"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_is_pinned_healthchecked_restarted_and_loopback_only(name):
    service = SERVICES[name]
    assert service.get("restart") == "unless-stopped", f"{name} is not restarted when it dies"
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


def test_no_secret_has_a_default_compose_refuses_to_start_without_it():
    text = (REPO / "docker-compose.yml").read_text()
    secrets = set(re.findall(r"\$\{(\w*(?:PASSWORD|SECRET)\w*)", text))
    assert {"REDIS_PASSWORD", "REDIS_SERVICE_PASSWORD", "REDIS_SPEED_PASSWORD", "AIRFLOW_DB_PASSWORD",
            "AIRFLOW_JWT_SECRET", "SPARK_AUTH_SECRET", "GRAFANA_ADMIN_PASSWORD"} <= secrets
    for name in secrets:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") for use in uses), f"{name} has a fallback: {uses}"
    assert "change-me" not in text


# The first release of each line with the 2025 security fixes (CVE-2025-49844 and its three companions).
PATCHED_REDIS = {(7, 2): 11, (7, 4): 6, (8, 0): 4, (8, 2): 2}


def test_redis_is_a_patched_release_and_the_service_and_speed_layer_use_their_own_users():
    major, minor, patch = map(int, re.match(r"redis:(\d+)\.(\d+)\.(\d+)", SERVICES["redis"]["image"]).groups())
    assert (major, minor) in PATCHED_REDIS and patch >= PATCHED_REDIS[(major, minor)]
    assert SERVICES["reco-service"]["environment"]["RECO_REDIS_URL"].startswith("redis://reco-service:")
    assert SERVICES["speed-layer"]["environment"]["RECO_REDIS_URL"].startswith("redis://reco-speed:")
    assert "redis-cli -a" not in (REPO / "docker-compose.yml").read_text()  # REDISCLI_AUTH instead


def test_the_compose_redis_command_starts_redis_with_the_acl_and_maxmemory(tmp_path):
    """The redis service's own shell command, run here against Debian's redis-server: the passwords stay off
    the command line, the service user gets the ACL file's rules, memory is bounded without eviction."""
    import redis as redis_py

    from schemas import redis_keys as rk
    from tests.support import free_port, wait_until
    service = SERVICES["redis"]
    script = service["command"][2].replace("$$", "$")
    for user in ("service", "speed"):
        script = script.replace(f"/etc/reco/{user}-user.acl", str(REPO / f"conf/redis/{user}-user.acl"))
    script = script.replace("/tmp/redis.conf", str(tmp_path / "redis.conf"))
    port = free_port()
    env = {**os.environ, "REDIS_PASSWORD": "jobs-secret", "REDIS_SERVICE_PASSWORD": "service-secret",
           "REDIS_SPEED_PASSWORD": "speed-secret", "REDIS_MAXMEMORY": "64mb"}
    process = subprocess.Popen(["sh", "-c", f"{script} --port {port} --bind 127.0.0.1 --dir {tmp_path}"],
                               env=env, stdout=subprocess.DEVNULL)
    try:
        admin = redis_py.Redis(port=port, password="jobs-secret")
        wait_until(admin.ping, 10, what="the compose Redis command")
        assert admin.config_get("maxmemory") == {"maxmemory": str(64 * 2**20)}
        assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert "secret" not in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
        service_user = redis_py.Redis(port=port, username="reco-service", password="service-secret")
        assert service_user.xadd(rk.EVENTS, {"event": "{}"})
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            service_user.delete(rk.EVENTS)
        speed_user = redis_py.Redis(port=port, username="reco-speed", password="speed-secret")
        assert speed_user.set(rk.fresh(1), "{}")
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            speed_user.xadd(rk.EVENTS, {"event": "{}"})
    finally:
        process.terminate()
        process.wait(10)


def test_the_service_is_reached_through_nginx_and_spark_requires_its_secret():
    front = SERVICES["reco-front"]
    assert "./conf/nginx/reco.conf.template:/etc/nginx/templates/reco.conf.template:ro" in front["volumes"]
    assert front["environment"]["RECO_UPSTREAM"] == "reco-service:8000"
    assert "ports" not in SERVICES["reco-service"]  # only the front is published
    spark_defaults = (REPO / "conf" / "spark" / "spark-defaults.conf").read_text()
    assert re.search(r"^spark\.authenticate true$", spark_defaults, re.M)
    for name in ("spark-master", "spark-worker", "airflow-scheduler"):
        env = SERVICES[name]["environment"]
        assert env["SPARK_CONF_DIR"] == "/opt/reco/conf/spark", name
        assert env["_SPARK_AUTH_SECRET"].startswith("${SPARK_AUTH_SECRET:?"), name
