"""Taking part in an experiment, as a request sees it: which arm's version a person is answered from
(schemas/experiments.py chooses), the answer's experiment fields, and the exposure each answer adds to the log
once it has been sent (serving/exposures.py writes it), so that the experiment's bookkeeping stays off the
latency people see."""

from __future__ import annotations

import logging
import time
from functools import partial

from flask import Flask, Response, g, request

from serving.exposures import ExposureLog
from serving.observability import EXPERIMENT_REQUESTS

log = logging.getLogger("reco.experiments")

NO_EXPERIMENT = {"experiment": None, "arm": None}


def experiment_fields(
    experiment: dict | None, arm: str | None, version: str, user_id: int | None, endpoint: str
) -> tuple[dict, dict | None]:
    """(the answer's experiment fields, the exposure the handler fills with what it showed, or None outside an
    experiment). The exposure is noted for the request's end, which logs it once the answer is sent."""
    if not experiment:
        return NO_EXPERIMENT, None
    exposure = {
        "request_id": g.request_id,
        "user_id": user_id,
        "experiment": experiment["id"],
        "arm": arm,
        "version": version,
        "endpoint": endpoint,
        "items": [],
        "fallback": None,
    }
    g.exposure = (exposure, experiment)
    return {"experiment": experiment["id"], "arm": arm}, exposure


def log_exposures(app: Flask, exposures: ExposureLog) -> None:
    """After each answer given in an experiment: its latency by arm, and its exposure into the log, once the
    answer has been sent (the server closes the response after writing it)."""

    @app.after_request
    def note(response: Response):
        noted = g.pop("exposure", None)
        if noted is not None:
            exposure, experiment = noted
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            seconds = time.perf_counter() - g.started
            response.call_on_close(partial(record, exposure, experiment, endpoint, response.status_code, seconds))
        return response

    def record(exposure: dict, experiment: dict, endpoint: str, status: int, seconds: float) -> None:
        try:
            EXPERIMENT_REQUESTS.labels(exposure["experiment"], exposure["arm"], endpoint, str(status)).observe(seconds)
            exposure.update(ts=int(time.time()), status=status, latency_ms=round(seconds * 1000, 3))
            exposures.add(exposure, experiment)
        except Exception:  # the answer is already sent: never let the log break the connection's clean-up
            log.exception("recording an exposure failed")
