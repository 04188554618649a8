"""The lookup service: `create_app(config)` builds the Flask app; gunicorn runs `serving.wsgi:app`."""
from __future__ import annotations

import json
import logging
import time
import uuid
from functools import partial
from importlib import resources

import yaml
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from conf import redis_client
from conf.settings import Config, load_config
from schemas.movielens import GENRES
from serving.api import GENRE_NAMES, BadRequest, api, error_response
from serving.exposures import ExposureLog
from serving.intake import events
from serving.observability import (
    EXPERIMENT_REQUESTS,
    REDIS_ERRORS,
    REQUESTS,
    LiveCollector,
    render,
)
from serving.store import NoLiveVersion, Store, StoreUnavailable
from serving.web import web

log = logging.getLogger("reco.serving")


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
    events = document["components"]["schemas"]["EventBatch"]["properties"]["events"]
    if limits and events.get("x-limit") in limits:
        events["maxItems"] = limits[events["x-limit"]]
    return document


def create_app(config: Config | None = None) -> Flask:
    config = config or load_config()
    app = Flask(__name__, static_folder=None)  # static files belong to the web blueprint
    app.json.sort_keys = False
    app.config["RECO_LIMITS"] = {"top_n": config.recommend.top_n, "neighbors": config.recommend.neighbors,
                                 "popular_n": config.recommend.popular_n,
                                 "max_events_per_request": config.events.max_events_per_request}
    app.config["RECO_EVENTS"] = config.events
    app.config["RECO_NEW_SLOTS"] = config.serving.new_slots
    app.config["RECO_PAGE_EVENTS"] = config.serving.page_events
    app.config["RECO_TS_MIN"] = config.validation.ts_min_epoch  # an event's earliest time (parsed once)
    app.config["MAX_CONTENT_LENGTH"] = config.events.max_body_bytes  # larger bodies: 413 before they are read
    # No connection is opened here: the pool connects on first use, in each worker after the fork.
    app.extensions["reco_store"] = Store(redis_client.reader(config.redis), config.serving.pointer_ttl,
                                         config.serving.cache_mb, config.serving.people_cache_mb)
    exposures = ExposureLog(app.extensions["reco_store"].client, config.experiments.exposure_backlog_mb,
                            config.experiments.exposure_flush_s)
    app.extensions["reco_exposures"] = exposures
    openapi = json.dumps(load_openapi(app.config["RECO_LIMITS"])).encode()
    app.register_blueprint(api)
    app.register_blueprint(events)
    app.register_blueprint(web)

    @app.get("/openapi.json")
    def openapi_document():
        return Response(openapi, mimetype="application/json")

    live = LiveCollector(app.extensions["reco_store"], config.events.backlog)

    @app.get("/metrics")
    def metrics():
        body, content_type = render(live)
        return Response(body, content_type=content_type)

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest):
        response = error_response(exc.status, exc.error, exc.detail, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable):
        REDIS_ERRORS.inc()
        response = error_response(503, "unavailable", "the recommendation store is unreachable, or refuses writes "
                                  "(out of memory); retry shortly")
        response.headers["Retry-After"] = "1"  # each request tries Redis again; the pool reconnects by itself
        return response

    @app.errorhandler(NoLiveVersion)
    def no_live_version(exc: NoLiveVersion):
        response = error_response(503, "not_ready", str(exc))
        response.headers["Retry-After"] = "10"  # the first publication is a pipeline run away
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = error_response(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # RFC 9110: a 405 says what is
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, "internal_error", "unexpected error; it has been logged")

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()
        # Names this answer: a click event carries it back (request_id) to say what the person was shown.
        g.request_id = uuid.uuid4().hex

    @app.after_request
    def observe(response: Response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        seconds = time.perf_counter() - g.started
        REQUESTS.labels(endpoint, str(response.status_code)).observe(seconds)
        response.headers["X-Request-Id"] = g.request_id
        response.headers["X-Content-Type-Options"] = "nosniff"  # a JSON answer is never sniffed as HTML
        taking_part = g.pop("exposure", None)
        if taking_part is not None:  # an answer given in an experiment (serving/api.py take_part)
            # Noted once the answer has been sent (the server closes the response after writing it), so the
            # experiment's bookkeeping stays off the latency people see.
            response.call_on_close(partial(record_exposure, *taking_part, endpoint, response.status_code, seconds))
        return response

    def record_exposure(exposure: dict, experiment: dict, endpoint: str, status: int, seconds: float) -> None:
        try:
            EXPERIMENT_REQUESTS.labels(exposure["experiment"], exposure["arm"], endpoint, str(status)).observe(seconds)
            exposure.update(ts=int(time.time()), status=status, latency_ms=round(seconds * 1000, 3))
            exposures.add(exposure, experiment)
        except Exception:  # the answer is already sent: never let the log break the connection's clean-up
            log.exception("recording an exposure failed")

    return app

