"""The lookup service's app factory: `create_app(config)`; gunicorn runs `serving.wsgi:app`."""

from __future__ import annotations

import json
import time
import uuid
from importlib import resources

import yaml
from flask import Flask, Response, g, request

from conf import redis_client
from conf.settings import Config, load_config
from schemas.movielens import GENRES
from serving.api import api
from serving.event_log import EventLog
from serving.experiments import log_exposures
from serving.exposures import ExposureLog
from serving.http import GENRE_NAMES, register_error_handlers
from serving.intake import events
from serving.observability import REQUESTS, LiveCollector, render
from serving.people import People
from serving.versions import Versions
from serving.web import web


def load_openapi(limits: dict[str, int] | None = None) -> dict:
    """schemas/openapi.yaml with what depends on the configuration filled in: the bound of each `k` (its
    `x-limit` names a key of `limits`, the lengths of the published lists) and the genre names."""
    document = yaml.safe_load(resources.files("schemas").joinpath("openapi.yaml").read_text())
    for parameter in document["components"]["parameters"].values():
        if limits and parameter.get("x-limit") in limits:
            parameter["schema"]["maximum"] = limits[parameter["x-limit"]]
            parameter["schema"]["default"] = min(10, limits[parameter["x-limit"]])
        if parameter.get("x-pattern") == "genres":  # one to len(GENRES) names, comma-separated
            names = "|".join(GENRE_NAMES)  # letters, digits, ' and -: nothing a pattern must escape
            parameter["schema"]["pattern"] = f"^({names})(,({names})){{0,{len(GENRES) - 1}}}$"
    events_ = document["components"]["schemas"]["EventBatch"]["properties"]["events"]
    if limits and events_.get("x-limit") in limits:
        events_["maxItems"] = limits[events_["x-limit"]]
    return document


def create_app(config: Config | None = None) -> Flask:
    config = config or load_config()
    app = Flask(__name__, static_folder=None)  # static files belong to the web blueprint
    app.json.sort_keys = False  # type: ignore[attr-defined]  # Flask's default provider has it
    app.config.update(
        RECO_LIMITS={
            "top_n": config.recommend.top_n,
            "neighbors": config.recommend.neighbors,
            "popular_n": config.recommend.popular_n,
            "max_events_per_request": config.events.max_events_per_request,
        },
        RECO_EVENTS=config.events,
        RECO_NEW_SLOTS=config.serving.new_slots,
        RECO_PAGE_EVENTS=config.serving.page_events,
        RECO_TS_MIN=config.validation.ts_min_epoch,  # an event's earliest time (parsed once)
        MAX_CONTENT_LENGTH=config.events.max_body_bytes,
    )  # larger bodies: 413 before they are read
    # No connection is opened here: the pool connects on first use, in each worker after the fork.
    client = redis_client.reader(config.redis)
    versions = Versions(client, config.serving.pointer_ttl, config.serving.cache_mb)
    event_log = EventLog(client)
    exposures = ExposureLog(client, config.experiments.exposure_backlog_mb, config.experiments.exposure_flush_s)
    app.extensions.update(
        reco_versions=versions,
        reco_people=People(client, config.serving.people_cache_mb, config.serving.people_cache_stale_s),
        reco_event_log=event_log,
        reco_exposures=exposures,
    )
    for blueprint in (api, events, web):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    log_exposures(app, exposures)

    openapi = json.dumps(load_openapi(app.config["RECO_LIMITS"])).encode()
    app.add_url_rule(
        "/openapi.json", "openapi_document", lambda: Response(openapi, mimetype="application/json"), methods=["GET"]
    )
    live = LiveCollector(versions, event_log, config.events.backlog)

    @app.get("/metrics")
    def metrics():
        body, content_type = render(live)
        return Response(body, content_type=content_type)

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()
        # Names this answer: a click event carries it back (request_id) to say what the person was shown.
        g.request_id = uuid.uuid4().hex

    @app.after_request
    def observe(response: Response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(endpoint, str(response.status_code)).observe(time.perf_counter() - g.started)
        response.headers["X-Request-Id"] = g.request_id
        response.headers["X-Content-Type-Options"] = "nosniff"  # a JSON answer is never sniffed as HTML
        return response

    return app
