"""gunicorn settings for the lookup service; each can be overridden by environment (GUNICORN_*, RECO_*).

Chosen by measurement on 2 cores (`make bench-serving`): benchmarks/results/serving.md has the figures
behind these defaults.
"""

import json
import multiprocessing
import os
import shutil
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

# Prometheus metrics from every worker process, aggregated by /metrics: in a folder of its own, made here unless
# one is given, and removed as the server exits (a new server counts from zero). Named in the environment, which
# a reload (SIGHUP runs this file again) keeps.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["RECO_MADE_METRICS_FOLDER"] = tempfile.mkdtemp(
        prefix="reco-prometheus-"
    )


def on_exit(server):
    if made := os.environ.get("RECO_MADE_METRICS_FOLDER"):
        shutil.rmtree(made, ignore_errors=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_starting(server):
    """Requests gunicorn refuses before the app sees them (a request line over 4094 bytes: 414; a malformed or
    duplicated header: 400; too many or too large headers: 431) get the API's JSON error, not gunicorn's HTML
    page: gunicorn has no setting for its error body, so its writer is replaced here, in the master, before the
    workers fork. tests/serving/test_api.py checks that these answers are JSON."""
    from gunicorn import util

    def write_json_error(sock, status_int, reason, mesg):
        error = {"error": reason.lower().replace(" ", "_"), "detail": mesg}
        body = json.dumps(error, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        util.write_nonblock(sock, head.encode("latin1") + body)

    util.write_error = write_json_error
