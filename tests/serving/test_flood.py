"""A flood of distinct anonymous users during an experiment, through the real service (gunicorn, 2 workers) on
a real Redis with `maxmemory` and noeviction: every answer they get is logged as an exposure, and the log stays
within its byte bound (experiments.exposure_backlog_mb) while lookups keep answering and intake keeps room."""
from concurrent.futures import ThreadPoolExecutor

import orjson
import requests

from jobs import publish
from schemas import redis_keys as rk
from serving.exposures import BATCH_BYTES
from tests.support import GunicornService, RedisServer, wait_until, write_config

BOUND_MB = 1
REQUESTS = 6_000  # at k=50 about 2.8 MB of exposures (470 bytes each): over twice the bound
TOKEN = "flood-token"


def test_a_flood_of_anonymous_users_leaves_redis_memory_bounded_and_lookups_answering(pipeline_run, spark,
                                                                                        tmp_path):
    config, run_id, _, _ = pipeline_run
    server = RedisServer(tmp_path / "redis").start()
    config = config.model_copy(update={"redis": config.redis.model_copy(update={"url": server.url})})
    publish.run(config, run_id, spark=spark)
    publish.run(config, run_id, spark=spark, candidate=True, share=0.5, salt="flood")
    admin = server.client()
    assert rk.decode(admin.get(rk.EXPERIMENT))["share"] == 0.5
    before = admin.info("memory")["used_memory"]
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", before + 64 * 2**20)  # room for the bound, far from the flood's size
    settings = write_config(tmp_path / "flood.yaml", {"experiments.exposure_backlog_mb": BOUND_MB,
                                                      "experiments.exposure_flush_s": 0.05})
    (tmp_path / "service").mkdir()
    service = GunicornService(server.url, tmp_path / "service",
                              env={"RECO_CONFIG": str(settings), "RECO_EVENTS_TOKEN": TOKEN}).start()
    try:
        def flood(worker: int) -> list[int]:
            with requests.Session() as session:
                return [session.get(f"{service.base_url}/v1/users/{10**7 + n}/recommendations?k=50",
                                    timeout=10).status_code for n in range(worker, REQUESTS, 8)]
        with ThreadPoolExecutor(8) as pool:
            statuses = [status for part in pool.map(flood, range(8)) for status in part]
        assert statuses == [200] * REQUESTS

        def dropped() -> float:
            metrics = requests.get(f"{service.base_url}/metrics", timeout=5).text
            return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                       if line.startswith("reco_exposures_total{") and 'outcome="dropped"' in line)
        wait_until(lambda: dropped() > 0, 10, what="exposures beyond the bound to be dropped")
        entries = [fields[b"exposures"] for _, fields in admin.xrange(rk.EXPOSURES)]
        logged_bytes = sum(len(entry) for entry in entries)
        per_exposure = logged_bytes / sum(len(orjson.loads(entry)) for entry in entries)
        assert per_exposure * REQUESTS > 2 * BOUND_MB * 2**20  # the flood would have filled twice the bound
        # Each worker may write one batch past the bound before it sees the stream's length.
        assert 0 < logged_bytes <= BOUND_MB * 2**20 + 2 * BATCH_BYTES
        assert admin.memory_usage(rk.EXPOSURES) <= 1.1 * (BOUND_MB * 2**20 + 2 * BATCH_BYTES)
        assert admin.info("memory")["used_memory"] - before < 16 * 2**20
        # Lookups answer, and intake still has room to write.
        assert requests.get(f"{service.base_url}/v1/users/1/recommendations", timeout=5).status_code == 200
        posted = requests.post(f"{service.base_url}/v1/events", headers={"Authorization": f"Bearer {TOKEN}"},
                               json={"events": [{"user_id": 1, "movie_id": 50, "type": "click"}]}, timeout=5)
        assert posted.status_code == 202
    finally:
        service.stop()
        server.stop()
