"""MovieLens acquisition: a local folder under a configured root (its release detected from its files) or
GroupLens' zip, downloaded once into a cache and verified.

Both come from outside, so both are fenced: a folder must lie under `data.movielens_roots` (symlinks resolved);
a download must come from `data.download_allowed` (scheme, host and port exactly), a redirect may not leave the
host, it may not exceed `data.max_download_mb`, its digest must equal the one pinned for the release (in
schemas/movielens.py, or `data.download_sha256`), and its files must fit in `data.max_extract_mb`.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import zipfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from conf.settings import Config, DataSettings, resolve_path
from jobs.lib.runtime.errors import JobError
from schemas.movielens import (
    DATASETS,
    DEFAULT_DOWNLOAD,
    AmbiguousFolder,
    DatasetSpec,
    detect_dataset,
)
from schemas.storage import is_local, join

log = logging.getLogger("reco.sources")

MAX_REDIRECTS = 3


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def check_allowed_url(url: str, allowed: list[str]) -> None:
    """JobError unless `url` is one of `allowed` or under it: same scheme, host and port, then the path on a
    segment boundary (https://files.grouplens.org.evil.example/ and user@host tricks do not pass)."""
    parts = urlsplit(url)
    if parts.username or parts.password or parts.query or parts.fragment or "%" in parts.path \
            or "\\" in parts.path or ".." in parts.path.split("/"):
        raise JobError(f"download URL {url!r} may not carry credentials, a query, a fragment, percent-escapes, "
                       "a backslash or '..'")
    for prefix in allowed:
        base = urlsplit(prefix)
        path, base_path = parts.path.rstrip("/") + "/", base.path.rstrip("/") + "/"
        if _origin(url) == _origin(prefix) and path.startswith(base_path):
            return
    raise JobError(f"download URL {url!r} is not allowed; data.download_allowed: {', '.join(allowed)}")


def pinned_digest(spec: DatasetSpec, data: DataSettings) -> tuple[str, str]:
    """(algorithm, hex digest) the release's zip must have."""
    if spec.name in data.download_sha256:
        return "sha256", data.download_sha256[spec.name].lower()
    if spec.zip_md5:
        return "md5", spec.zip_md5
    raise JobError(f"no checksum is pinned for {spec.zip_name}: download it from GroupLens yourself, and set "
                   f"data.download_sha256.{spec.name} to its `sha256sum`")


def download_dataset(spec: DatasetSpec, data: DataSettings, cache_dir: Path, timeout: float = 60.0) -> dict:
    """Download `<base_url>/<name>.zip` into the cache once, verified, and extract it.

    Verification: the URL against data.download_allowed, the byte count against Content-Length and
    data.max_download_mb, the time against `timeout` per read and data.download_deadline_s in all (a server
    that trickles a byte now and then is stopped), the digest pinned for the release, the zip's own CRCs, and
    its files' total size against data.max_extract_mb. A download that fails any of them is deleted, so the cache never holds a bad
    file. Returns what was checked, for the manifest.
    """
    url = f"{data.download_base_url.rstrip('/')}/{spec.zip_name}"
    check_allowed_url(url, data.download_allowed)
    algorithm, expected = pinned_digest(spec, data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    zip_path = cache_dir / spec.zip_name
    stamp = cache_dir / f"{spec.zip_name}.verified"
    extracted = cache_dir / spec.name
    if zip_path.exists() and stamp.exists() and stamp.read_text().strip() == sha256_of(zip_path):
        log.info("using cached %s", zip_path)
        checks = {"cached": True}
    else:
        checks = _fetch_verified(url, zip_path, algorithm, expected, data, timeout)
        stamp.write_text(sha256_of(zip_path))
        shutil.rmtree(extracted, ignore_errors=True)
    if not (extracted / spec.ratings_file).exists():
        tmp = cache_dir / f".{spec.name}.extracting"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as archive:
            # Each member's declared size bounds what is written for it (the reader stops there, and its CRC
            # fails if the data says otherwise), so the sum bounds the whole extraction.
            total = sum(member.file_size for member in archive.infolist())
            if total > data.max_extract_mb * 2**20:
                raise JobError(f"{zip_path} would extract to {total / 2**20:.0f} MB, over data.max_extract_mb "
                               f"({data.max_extract_mb})")
            archive.extractall(tmp)
        # Archives hold one top folder named like the dataset; take whichever folder has the ratings.
        inner = next(p.parent for p in tmp.rglob(spec.ratings_file))
        shutil.rmtree(extracted, ignore_errors=True)
        os.replace(inner, extracted)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"url": url, "zip": str(zip_path), "folder": str(extracted), **checks}


def _get_same_host(url: str, timeout: float) -> requests.Response:
    """GET, following at most MAX_REDIRECTS redirects, none to another scheme, host or port."""
    for _ in range(MAX_REDIRECTS + 1):
        response = requests.get(url, stream=True, timeout=timeout, allow_redirects=False)
        if not response.is_redirect:
            return response
        target = urljoin(url, response.headers["Location"])
        response.close()
        if _origin(target) != _origin(url):
            raise JobError(f"download of {url} redirects to another host ({target}); refused")
        url = target
    raise JobError(f"download of {url} redirects more than {MAX_REDIRECTS} times")


def _fetch_verified(url: str, zip_path: Path, algorithm: str, expected: str, data: DataSettings,
                    timeout: float) -> dict:
    part = zip_path.with_suffix(".zip.part")
    limit = data.max_download_mb * 2**20
    log.info("downloading %s", url)
    try:
        with _get_same_host(url, timeout) as response:
            if response.status_code != 200:
                raise JobError(f"download of {url} failed: HTTP {response.status_code}")
            expected_size = int(response.headers.get("Content-Length", 0)) or None
            if expected_size is not None and expected_size > limit:
                raise JobError(f"download of {url} is {expected_size} bytes, over data.max_download_mb "
                               f"({data.max_download_mb})")
            digest, size = hashlib.new(algorithm), 0
            deadline = time.monotonic() + data.download_deadline_s
            with open(part, "wb") as out:
                # read1: whatever one read of the socket gives, so the deadline is looked at however slowly
                # the bytes come
                while block := response.raw.read1(1 << 20, decode_content=True):
                    size += len(block)
                    if size > limit:
                        raise JobError(f"download of {url} passed data.max_download_mb ({data.max_download_mb}); "
                                       "stopped")
                    if time.monotonic() > deadline:
                        raise JobError(f"download of {url} took longer than data.download_deadline_s "
                                       f"({data.download_deadline_s:g} s); stopped")
                    out.write(block)
                    digest.update(block)
        if expected_size is not None and size != expected_size:
            raise JobError(f"download of {url} is truncated: {size} of {expected_size} bytes")
        if digest.hexdigest() != expected:
            raise JobError(f"download of {url} is corrupt or not the release: {algorithm} {digest.hexdigest()}, "
                           f"pinned {expected}")
        with zipfile.ZipFile(part) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise JobError(f"download of {url} is corrupt: CRC error in {bad}")
    except zipfile.BadZipFile as exc:
        part.unlink(missing_ok=True)
        raise JobError(f"download of {url} is not a zip archive: {exc}") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        part.unlink(missing_ok=True)
        raise JobError(f"download of {url} failed: {exc}") from None
    except JobError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, zip_path)
    return {"bytes": size, "content_length_checked": expected_size is not None, "digest_algorithm": algorithm,
            "digest": digest.hexdigest(), "digest_checked": True, "zip_crc_checked": True}


def check_under_roots(folder: Path, roots: list[str]) -> Path:
    """The folder with symlinks resolved, if it lies under one of `roots` (also resolved); else JobError."""
    resolved = folder.resolve()
    allowed = [Path(resolve_path(root)).resolve() for root in roots]
    if not any(resolved == root or root in resolved.parents for root in allowed):
        raise JobError(f"RECO_MOVIELENS_DIR {folder} is outside data.movielens_roots "
                       f"({', '.join(map(str, allowed))}); add its parent there (RECO_MOVIELENS_ROOTS)")
    return resolved


def locate_source(config: Config) -> tuple[DatasetSpec, dict]:
    """(the release, where its files are): RECO_MOVIELENS_DIR when set, its release detected from the files
    (RECO_DATASET needed only where they fit several), otherwise the verified download of the configured
    dataset (ml-100k by default)."""
    if config.movielens_dir:
        folder = check_under_roots(Path(config.movielens_dir), config.data.movielens_roots)
        if not folder.is_dir():
            raise JobError(f"RECO_MOVIELENS_DIR {folder} is not a folder")
        try:
            spec = detect_dataset(folder, config.data.dataset)
        except AmbiguousFolder as exc:
            raise JobError(str(exc)) from None
        return spec, {"folder": str(folder), "url": None}
    spec = DATASETS[config.data.dataset or DEFAULT_DOWNLOAD]
    cache = Path(join(config.data_root, "downloads")) if is_local(config.data_root) else \
        Path.home() / ".cache" / "movielens-reco"
    return spec, download_dataset(spec, config.data, cache)
