"""Writing benchmark results: one JSON file and one short markdown table per benchmark."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

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


def commit() -> str:
    """The checkout's commit, with `+changes` when the work tree differs from it (figures of unlanded code)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=RESULTS.parent.parent, capture_output=True, text=True).stdout.strip()
    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    # The results folder aside: a run of several sizes rewrites its own results after each one.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    return sha + ("+changes" if changed else "")


def machine() -> dict:
    # stdlib only: bench-demo writes its results from a machine without the project's virtualenv
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpus": os.cpu_count(), "memory_gib": round(memory / 2**30, 1),
            "python": platform.python_version(), "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": commit()}


def write(name: str, payload: dict, table_rows: list[tuple], header: tuple, notes: str = "") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    where = machine()
    (RESULTS / f"{name}.json").write_text(json.dumps({**payload, "machine": where}, indent=2) + "\n")
    text = f"# {name}\n\n" + markdown_table(header, table_rows) + (f"\n{notes}\n" if notes else "") + (
        f"\nMeasured {where['measured_at']} at commit {where['commit']} ({where['cpus']} CPUs, "
        f"{where['memory_gib']} GiB).\n")
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return RESULTS / f"{name}.json"


def markdown_table(header: tuple, rows: list[tuple]) -> str:
    lines = [f"| {' | '.join(header)} |", f"| {' | '.join('---' for _ in header)} |"]
    return "\n".join(lines + [f"| {' | '.join(str(c) for c in row)} |" for row in rows]) + "\n"
