"""MovieLens acquisition: a local folder (its release detected from its files) or GroupLens' zip, downloaded
once into a cache and verified (byte count, the published MD5, the zip's CRCs)."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from pathlib import Path

import requests

from conf.settings import Config
from jobs.lib.runtime.errors import JobError
from jobs.lib.runtime.storage import is_local, join
from schemas.movielens import DATASETS, DEFAULT_DOWNLOAD, AmbiguousFolder, DatasetSpec, detect_dataset

log = logging.getLogger("reco.sources")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_dataset(spec: DatasetSpec, base_url: str, cache_dir: Path, timeout: float = 60.0) -> dict:
    """Download `<base_url>/<name>.zip` into the cache once, verified, and extract it.

    Verification: the byte count against Content-Length, the MD5 GroupLens publishes beside each zip
    (`<zip>.md5`) when the server has it, and the zip's own CRCs. A download that fails any of them is
    deleted, so the cache never holds a bad file. Returns what was checked, for the manifest.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    url = f"{base_url.rstrip('/')}/{spec.zip_name}"
    zip_path = cache_dir / spec.zip_name
    stamp = cache_dir / f"{spec.zip_name}.verified"
    extracted = cache_dir / spec.name
    if zip_path.exists() and stamp.exists() and stamp.read_text().strip() == sha256_of(zip_path):
        log.info("using cached %s", zip_path)
        checks = {"cached": True}
    else:
        checks = _fetch_verified(url, zip_path, timeout)
        stamp.write_text(sha256_of(zip_path))
        shutil.rmtree(extracted, ignore_errors=True)
    if not (extracted / spec.ratings_file).exists():
        tmp = cache_dir / f".{spec.name}.extracting"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
        # Archives hold one top folder named like the dataset; take whichever folder has the ratings.
        inner = next(p.parent for p in tmp.rglob(spec.ratings_file))
        shutil.rmtree(extracted, ignore_errors=True)
        os.replace(inner, extracted)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"url": url, "zip": str(zip_path), "folder": str(extracted), **checks}


def _fetch_verified(url: str, zip_path: Path, timeout: float) -> dict:
    part = zip_path.with_suffix(".zip.part")
    log.info("downloading %s", url)
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise JobError(f"download of {url} failed: HTTP {response.status_code}")
            expected_size = int(response.headers.get("Content-Length", 0)) or None
            md5 = hashlib.md5()
            with open(part, "wb") as out:
                for block in response.iter_content(1 << 20):
                    out.write(block)
                    md5.update(block)
        size = part.stat().st_size
        if expected_size is not None and size != expected_size:
            raise JobError(f"download of {url} is truncated: {size} of {expected_size} bytes")
        published_md5 = _published_md5(url, timeout)
        if published_md5 is not None and published_md5 != md5.hexdigest():
            raise JobError(f"download of {url} is corrupt: md5 {md5.hexdigest()}, published {published_md5}")
        with zipfile.ZipFile(part) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise JobError(f"download of {url} is corrupt: CRC error in {bad}")
    except zipfile.BadZipFile as exc:
        part.unlink(missing_ok=True)
        raise JobError(f"download of {url} is not a zip archive: {exc}") from None
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        raise JobError(f"download of {url} failed: {exc}") from None
    except JobError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, zip_path)
    return {"bytes": size, "content_length_checked": expected_size is not None,
            "md5": md5.hexdigest(), "md5_checked": published_md5 is not None, "zip_crc_checked": True}


def _published_md5(url: str, timeout: float) -> str | None:
    try:
        response = requests.get(url + ".md5", timeout=timeout)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    # GroupLens' .md5 files read "MD5 (ml-100k.zip) = <hex>"; md5sum writes "<hex>  name". Take the hex word.
    words = [w for w in response.text.replace("=", " ").split() if len(w) == 32]
    return words[0].lower() if words else None


def locate_source(config: Config) -> tuple[DatasetSpec, dict]:
    """(the release, where its files are): RECO_MOVIELENS_DIR when set, its release detected from the files
    (RECO_DATASET needed only where they fit several), otherwise the verified download of the configured
    dataset (ml-100k by default)."""
    if config.movielens_dir:
        folder = Path(config.movielens_dir)
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
    return spec, download_dataset(spec, config.data.download_base_url, cache)
