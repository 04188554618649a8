"""The service's WSGI app plus one endpoint for `make bench-serving` only: `POST /bench/intake-floor`, the
event intake's framework floor. It does what every intake request does before the checks and the write: the
token compared, the body read and parsed as JSON, a 202 JSON answer through the same hooks; nothing is checked
against the live version and nothing is stored. Served by the same gunicorn settings as the service, and
built by the same entry point (serving/wsgi.py: the app, then what the worker built frozen for the collector).
"""
from __future__ import annotations

import orjson
from flask import request

from serving.http import json_response
from serving.intake import authorize, settings
from serving.wsgi import app


@app.post("/bench/intake-floor")
def intake_floor():
    authorize(settings().token)
    body = orjson.loads(request.get_data(cache=False))
    return json_response({"accepted": len(body["events"]), "ids": []}, 202)
