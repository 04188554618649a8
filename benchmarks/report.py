"""Writing benchmark results: one JSON file and one short markdown table per benchmark."""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"


def scratch_folder(name: str) -> Path:
    """A working folder for one run of a benchmark (its Redis, data, runs and logs: gigabytes for bench-scale).
    `done_with` removes it once the results are written; a run that fails leaves it for a look, as does
    BENCH_KEEP=1."""
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    print(f"{name}: working folder {folder}", flush=True)
    return folder


def done_with(folder: Path) -> None:
    if os.environ.get("BENCH_KEEP"):
        print(f"working folder kept (BENCH_KEEP): {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


def machine() -> dict:
    return {"cpus": psutil.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write(name: str, payload: dict, table_rows: list[tuple], header: tuple, notes: str = "") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**payload, "machine": machine()}, indent=2) + "\n")
    text = f"# {name}\n\n" + markdown_table(header, table_rows) + (f"\n{notes}\n" if notes else "")
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return RESULTS / f"{name}.json"


def markdown_table(header: tuple, rows: list[tuple]) -> str:
    lines = [f"| {' | '.join(header)} |", f"| {' | '.join('---' for _ in header)} |"]
    return "\n".join(lines + [f"| {' | '.join(str(c) for c in row)} |" for row in rows]) + "\n"
