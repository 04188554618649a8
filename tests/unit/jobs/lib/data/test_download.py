"""Where downloads may come from: hostile URLs against the allowlist."""
import pytest

from jobs.lib.data.download import check_allowed_url
from jobs.lib.runtime.errors import JobError

ALLOWED = ["https://files.grouplens.org/datasets/movielens"]


@pytest.mark.parametrize("url", [
    "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    "https://FILES.grouplens.org/datasets/movielens/ml-25m.zip",
    "https://files.grouplens.org/datasets/movielens/",
])
def test_the_allowed_place_passes(url):
    check_allowed_url(url, ALLOWED)


@pytest.mark.parametrize("url", [
    "http://files.grouplens.org/datasets/movielens/ml-100k.zip",              # another scheme
    "https://files.grouplens.org:8443/datasets/movielens/ml-100k.zip",        # another port
    "https://files.grouplens.org.evil.example/datasets/movielens/ml-100k.zip",
    "https://files.grouplens.org@evil.example/datasets/movielens/ml-100k.zip",
    "https://user:pw@files.grouplens.org/datasets/movielens/ml-100k.zip",
    "https://evil.example/files.grouplens.org/datasets/movielens/ml-100k.zip",
    "https://files.grouplens.org/datasets/movielens-evil/ml-100k.zip",       # not on a segment boundary
    "https://files.grouplens.org/datasets/ml-100k.zip",                       # above the allowed folder
    "https://files.grouplens.org/datasets/movielens/ml-100k.zip?x=https://evil.example/",
    "https://files.grouplens.org/datasets/movielens/../../private/ml-100k.zip",
    "https://files.grouplens.org/datasets/movielens/%2e%2e/%2e%2e/private/ml-100k.zip",
    "https://files.grouplens.org/datasets/movielens/%2E%2E%2Fprivate/ml-100k.zip",
    "https://files.grouplens.org/datasets/movielens/..\\private/ml-100k.zip",
    "file:///etc/passwd",
    "ftp://files.grouplens.org/datasets/movielens/ml-100k.zip",
])
def test_anything_else_is_refused(url):
    with pytest.raises(JobError, match="not allowed|may not carry"):
        check_allowed_url(url, ALLOWED)
