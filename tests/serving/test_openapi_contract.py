"""The API keeps its own contract: schemathesis (every operation, every check, positive and negative data,
bounded examples, fixed seed) against the real service under gunicorn, answering from a published version, and
through the nginx front that `make serve`, `make demo` and compose put before it."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from serving import front
from serving.http import GENRE_NAMES
from tests.conftest import SERVICE_EVENTS_TOKEN
from tests.support import free_port, wait_until

ST = Path(sys.executable).parent / "st"


@pytest.fixture(scope="module")
def fronted(service, tmp_path_factory):
    """The service behind its front, the per-address rate out of the way (schemathesis is one fast address)."""
    folder, port = tmp_path_factory.mktemp("contract-front"), free_port()
    front.start(folder, f"127.0.0.1:{port}", service[0].removeprefix("http://"), rate_per_s=10**6)
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok, 10, what="nginx")
    yield f"http://127.0.0.1:{port}"
    front.stop(folder)


@pytest.mark.parametrize("through", ["gunicorn", "front"])
def test_schemathesis_finds_no_failure(through, service, fronted, tmp_path):
    base = service[0] if through == "gunicorn" else fronted
    report = tmp_path / "report.ndjson"
    result = subprocess.run(
        [str(ST), "--config-file", str(Path(__file__).with_name("schemathesis.toml")), "run", f"{base}/openapi.json",
         "--checks", "all", "--mode", "all", "--max-examples", "30",
         "--seed", "42",
         # One worker: Python 3.11's ast.parse is not thread-safe (CPython gh-106905), and hypothesis calls it
         # to describe filters; two schemathesis threads made a spurious "AST constructor recursion" error.
         "--workers", "1",
         "--header", f"Authorization: Bearer {SERVICE_EVENTS_TOKEN}", "--phases", "examples,coverage,fuzzing",
         "--request-timeout", "5",
         "--report", "ndjson", "--report-ndjson-path", str(report), "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = passed_operations(report)
    document = requests.get(f"{base}/openapi.json", timeout=5).json()
    # schemathesis leaves out the document's own path; test_serving checks /openapi.json against the routes
    operations = {f"{method.upper()} {path}" for path, methods in document["paths"].items()
                  for method in methods} - {"GET /openapi.json"}
    assert operations <= passed["coverage"] and operations <= passed["fuzzing"], passed


def passed_operations(report: Path) -> dict[str, set[str]]:
    """Per phase, the operations ('GET /path') whose scenarios schemathesis finished with success (NDJSON log)."""
    passed: dict[str, set[str]] = {"coverage": set(), "fuzzing": set()}
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if finished and finished["status"] == "success" and finished["phase"] in passed:
            passed[finished["phase"]].add(finished["recorder"]["label"])
    return passed


def test_document_states_the_configured_bounds(service):
    base, config, _ = service
    document = requests.get(f"{base}/openapi.json", timeout=5).json()
    bounds = {name: p["schema"]["maximum"] for name, p in document["components"]["parameters"].items()
              if name.startswith("K")}
    assert bounds == {"KUser": config.recommend.top_n, "KSimilar": config.recommend.neighbors,
                      "KPopular": config.recommend.popular_n, "KSearch": config.recommend.popular_n}
    genres = re.compile(document["components"]["parameters"]["Genre"]["schema"]["pattern"])
    assert all(genres.match(name) for name in GENRE_NAMES) and genres.match("Western,sci-fi")
    assert not genres.match("Western,") and not genres.match("Nope")
    # the bound is the real one: k = maximum is served, maximum + 1 is refused
    top = config.recommend.top_n
    assert len(requests.get(f"{base}/v1/users/1/recommendations?k={top}", timeout=5).json()["items"]) == top
    assert requests.get(f"{base}/v1/users/1/recommendations?k={top + 1}", timeout=5).status_code == 400


def test_a_wrong_method_gets_405_with_allow(service):
    base, _, _ = service
    response = requests.delete(f"{base}/v1/popular", timeout=5)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD", "OPTIONS"}
    assert response.json()["error"] == "method_not_allowed"
