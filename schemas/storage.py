"""Files under the data root, on local disk or an object store (s3a://), through pyarrow's filesystems: small
JSON and text files (manifests, reports, metrics), Parquet files read and written outside Spark, and arrays
(schemas/bundle.py). Spark reads and writes its tables itself."""

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
    write_bytes(path, text.encode())


def write_bytes(path: str, data: bytes) -> None:
    """Write a file whole or not at all. Locally: a temporary file, fsync, rename, fsync of the folder, so that a
    crash or a power loss leaves the old file or the new one, never a torn one. An object store's put is already
    all or nothing."""
    filesystem, inner = _filesystem(path)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    if not is_local(path):
        with filesystem.open_output_stream(inner) as out:
            out.write(data)
        return
    temporary = f"{inner}.tmp-{os.getpid()}"
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, inner)
    _fsync_folder(os.path.dirname(inner))


def read_bytes(path: str) -> bytes:
    filesystem, inner = _filesystem(path)
    with filesystem.open_input_stream(inner) as stream:
        return stream.read()


def local_path(path: str) -> str | None:
    """The path on this machine's disk, or None for an object store."""
    return _filesystem(path)[1] if is_local(path) else None


def _fsync_folder(folder: str) -> None:
    """Make a rename in `folder` durable (the folder's entry is what a rename changes)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json(path: str, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str))


def read_json(path: str) -> Any:
    return json.loads(read_bytes(path))


def exists(path: str) -> bool:
    filesystem, inner = _filesystem(path)
    return filesystem.get_file_info(inner).type != pafs.FileType.NotFound


def list_files(folder: str, suffix: str, contains: bool = False) -> list[str]:
    """Paths of the files directly in `folder` whose names end with `suffix` (or, `contains`, have it anywhere),
    sorted; [] when the folder is missing."""
    filesystem, inner = _filesystem(folder)
    infos = filesystem.get_file_info(pafs.FileSelector(inner, allow_not_found=True))
    names = sorted(
        i.base_name
        for i in infos
        if i.type == pafs.FileType.File and (suffix in i.base_name if contains else i.base_name.endswith(suffix))
    )
    return [join(folder, name) for name in names]


def fingerprint(path: str) -> list[list]:
    """[relative name, size, modification time in ns] of every file under `path` (a file, or a folder of part
    files as Spark writes them), sorted; [] when missing. Rewriting anything there changes it (Spark names each
    part file anew)."""
    filesystem, inner = _filesystem(path)
    info = filesystem.get_file_info(inner)
    if info.type == pafs.FileType.File:
        return [[info.base_name, info.size, info.mtime_ns]]
    infos = filesystem.get_file_info(pafs.FileSelector(inner, allow_not_found=True, recursive=True))
    return sorted(
        [i.path.removeprefix(inner).lstrip("/"), i.size, i.mtime_ns] for i in infos if i.type == pafs.FileType.File
    )


def move_file(source: str, target: str) -> None:
    filesystem, inner = _filesystem(source)
    filesystem.move(inner, _filesystem(target)[1])


def delete_file(path: str) -> None:
    filesystem, inner = _filesystem(path)
    filesystem.delete_file(inner)


def remove_folder(path: str) -> None:
    """Delete a folder and what it holds; nothing to do when it is missing."""
    filesystem, inner = _filesystem(path)
    if filesystem.get_file_info(inner).type != pafs.FileType.NotFound:
        filesystem.delete_dir(inner)


def write_parquet_batches(path: str, schema, batches) -> int:
    """Write record batches as one Parquet file, under a temporary name first, then moved into place: a reader
    never sees a half-written file, and locally the file is on disk (fsync) before it takes its name. Returns the
    rows the written file holds, read back from its footer."""
    import pyarrow.parquet as pq

    filesystem, inner = _filesystem(path)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    partial = f"{inner}.partial"
    with filesystem.open_output_stream(partial) as out, pq.ParquetWriter(out, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    if is_local(path):  # on disk before it takes its name, and the name on disk before anyone relies on it
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
    filesystem.move(partial, inner)
    if is_local(path):
        _fsync_folder(os.path.dirname(inner))
    with filesystem.open_input_file(inner) as written:
        return pq.ParquetFile(written).metadata.num_rows


def read_parquet_batches(path: str, columns: list[str], batch_size: int):
    """Record batches of `columns` from one Parquet file, `batch_size` rows at a time."""
    import pyarrow.parquet as pq

    filesystem, inner = _filesystem(path)
    with filesystem.open_input_file(inner) as source:
        yield from pq.ParquetFile(source).iter_batches(batch_size=batch_size, columns=columns)


def read_table(path: str, columns: list[str] | None = None):
    """A Parquet table (pyarrow) from one file or a folder of part files, as Spark writes them."""
    import pyarrow.parquet as pq

    filesystem, inner = _filesystem(path)
    return pq.read_table(inner, columns=columns, filesystem=filesystem)


def replace_folder_with_table(path: str, table) -> int:
    """Write an Arrow table as the only Parquet part file of folder `path`, which Spark reads as it reads its own
    (what was there goes first, as Spark's overwrite). Returns the rows written. A table read from Spark's files
    carries Spark's row schema in its metadata, which Spark would read back instead of the table's columns (a
    column added since would vanish): it is dropped."""
    remove_folder(path)
    table = table.replace_schema_metadata(None)
    return write_parquet_batches(join(path, "part-00000.parquet"), table.schema, table.to_batches())


def copy_folder(source: str, target: str) -> None:
    """Copy a local folder to a path every executor sees (an object store, for a cluster)."""
    pafs.copy_files(source, re.sub(r"^s3a://", "s3://", target))
