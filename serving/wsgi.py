"""WSGI entry point for gunicorn: `gunicorn -c serving/gunicorn.conf.py serving.wsgi:app`."""

import gc

from serving.app import create_app

app = create_app()
app.extensions["reco_people"].start()  # this worker's copy of people's keys connects before its first request
# Everything imported and built so far lives as long as the worker: out of the collector's sight, a full
# collection walks only what requests leave behind (a fraction of the time a full collection takes with
# the near cache's values kept as tuples, serving/versions.py).
gc.collect()
gc.freeze()
