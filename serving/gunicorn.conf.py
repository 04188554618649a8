"""gunicorn settings for the lookup service; each can be overridden by environment (GUNICORN_*, RECO_*).

Chosen by measurement on 2 cores (`make bench-serving`): README "Performance", "Serving" has the figures
behind these defaults.
"""
import multiprocessing
import os
import tempfile

bind = f"{os.environ.get('RECO_HOST', '127.0.0.1')}:{os.environ.get('RECO_PORT', '8000')}"
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "200"))
keepalive = 5
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESSLOG")  # off by default: it costs throughput; metrics cover it
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")

# Prometheus metrics from every worker process, aggregated by /metrics.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="reco-prometheus-")


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)
