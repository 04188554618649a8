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


def exists(path: str) -> bool:
    filesystem, inner = _filesystem(path)
    return filesystem.get_file_info(inner).type != pafs.FileType.NotFound


def list_files(folder: str, suffix: str) -> list[str]:
    """Paths of the files directly in `folder` whose names end with `suffix`, sorted; [] when it is missing."""
    filesystem, inner = _filesystem(folder)
    infos = filesystem.get_file_info(pafs.FileSelector(inner, allow_not_found=True))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(suffix))
    return [join(folder, name) for name in names]


def write_parquet_batches(path: str, schema, batches) -> int:
    """Write record batches as one Parquet file, under a temporary name first, then moved into place: a reader
    never sees a half-written file. Returns the rows the written file holds, read back from its footer."""
    import pyarrow.parquet as pq

    filesystem, inner = _filesystem(path)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    partial = f"{inner}.partial"
    with filesystem.open_output_stream(partial) as out, pq.ParquetWriter(out, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    filesystem.move(partial, inner)
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
    (what was there goes first, as Spark's overwrite). Returns the rows written."""
    filesystem, inner = _filesystem(path)
    if filesystem.get_file_info(inner).type != pafs.FileType.NotFound:
        filesystem.delete_dir(inner)
    return write_parquet_batches(join(path, "part-00000.parquet"), table.schema, table.to_batches())


def copy_folder(source: str, target: str) -> None:
    """Copy a local folder to a path every executor sees (an object store, for a cluster)."""
    pafs.copy_files(source, re.sub(r"^s3a://", "s3://", target))
