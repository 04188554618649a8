"""The page for people (blueprint `web`): a static HTML page whose script calls the JSON API."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from schemas.movielens import GENRES

web = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/static")


# The page loads only its own script and style sheet and calls only this service's API: anything else (an
# injected script, a third-party frame around it) is refused by the browser.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@web.get("/")
def index():
    return render_template("index.html", genres=GENRES, page_events=current_app.config["RECO_PAGE_EVENTS"])


@web.after_request
def protect(response):
    """The page and its static files (not the JSON API, which browsers do not render)."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
