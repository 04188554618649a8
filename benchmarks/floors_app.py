"""The service's WSGI app plus two endpoints for `make bench-serving` only, each a floor for one of the service's
paths: what every request of that path does before it reads or writes anything, through the same hooks, served
by the same gunicorn settings and built by the same entry point (serving/wsgi.py: the app, then what the worker
built frozen for the collector).

- `GET /bench/lookup-floor/<user_id>/recommendations`: a person's lookup up to its first read: the route with
  its id and the query parsed and checked as the lookup does, then a constant answer.
- `POST /bench/intake-floor`: the event intake's: the token compared, the body read and parsed as JSON, a 202
  JSON answer; nothing is checked against the live version and nothing is stored.
"""
from __future__ import annotations

import orjson
from flask import request

from serving.api import parse_recommendations_request
from serving.http import json_response
from serving.intake import authorize, settings
from serving.wsgi import app


@app.get("/bench/lookup-floor/<user_id>/recommendations")
def lookup_floor(user_id: str):
    parse_recommendations_request(user_id)  # exactly what the lookup parses and checks
    return json_response({"status": "ok"})


@app.post("/bench/intake-floor")
def intake_floor():
    authorize(settings().token)
    body = orjson.loads(request.get_data(cache=False))
    return json_response({"accepted": len(body["events"]), "ids": []}, 202)
