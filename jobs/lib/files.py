"""Small JSON and text files (manifests, reports, metrics) on local disk or an object store (s3a://), through
pyarrow's filesystems; Spark reads and writes the tables itself."""
from __future__ import annotations

import json
import os
import re
from typing import Any

from pyarrow import fs as pafs


def join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *(p.strip("/") for p in parts[1:])])


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if is_local(path):
        return pafs.LocalFileSystem(), os.path.abspath(path.removeprefix("file://"))
    # Hadoop's s3a:// is plain s3:// to Arrow.
    return pafs.FileSystem.from_uri(re.sub(r"^s3a://", "s3://", path))


def write_text(path: str, text: str) -> None:
    filesystem, inner = _filesystem(path)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(inner) as out:
        out.write(text.encode())


def write_json(path: str, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str))


def read_json(path: str) -> Any:
    filesystem, inner = _filesystem(path)
    with filesystem.open_input_stream(inner) as stream:
        return json.loads(stream.read())


def copy_folder(source: str, target: str) -> None:
    """Copy a local folder to a path every executor sees (an object store, for a cluster)."""
    pafs.copy_files(source, re.sub(r"^s3a://", "s3://", target))
