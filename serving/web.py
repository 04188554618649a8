"""The page for people (blueprint `web`): a static HTML page whose script calls the JSON API."""
from __future__ import annotations

from flask import Blueprint, render_template

from schemas.movielens import GENRES

web = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/static")


@web.get("/")
def index():
    return render_template("index.html", genres=GENRES)
