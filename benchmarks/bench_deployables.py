"""Deployables benchmark: what each deployable installs, and how long its entry point takes to import.

For each dependency extra of pyproject.toml (service, speed, batch, orchestration) a fresh venv is built from it
alone (`pip install -c constraints.txt "<project>[extra]"`, from pip's cache once it is warm), then its size on
disk and the import time of its entry point there (the median of 5 fresh interpreters). Against the same for
the one dependency list every image installed before the extras (the project at BEFORE, whose service image was
`pip install -e .`), with that version's entry points. Writes benchmarks/results/deployables.json and
deployables.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import done_with, scratch_folder, write

REPO = Path(__file__).resolve().parent.parent
BEFORE = "304f7e7"  # the last commit with one dependency list for everything
# extra -> (its entry point now, the same deployable's entry point at BEFORE)
DEPLOYABLES = {
    "service": ("serving.app", "serving"),
    "speed": ("serving.speed.consumer", "jobs.speed_layer"),
    "batch": ("jobs.recommend", "jobs.recommend"),
    "orchestration": ("airflow.providers.apache.spark.operators.spark_submit",
                      "airflow.providers.apache.spark.operators.spark_submit"),
}
IMPORT = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def venv(folder: Path, requirement: str) -> dict:
    """A fresh venv with `requirement` installed under the project's constraints: its size and install time."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    started = time.perf_counter()
    subprocess.run([*pip, "-c", str(REPO / "constraints.txt"), requirement], check=True)
    seconds = time.perf_counter() - started
    size = int(subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True, check=True)
               .stdout.split()[0])
    packages = len(json.loads(subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "list", "--format",
                                              "json"], capture_output=True, text=True, check=True).stdout))
    return {"mib": round(size / 2**20), "packages": packages, "install_s": round(seconds, 1)}


def import_seconds(folder: Path, module: str, runs: int = 5) -> float:
    """Median seconds to import `module` in a fresh interpreter of the venv (from a folder outside the checkout,
    so the installed code is what is imported)."""
    times = []
    for _ in range(runs):
        out = subprocess.run([str(folder / "bin" / "python"), "-c", IMPORT.format(module=module)], cwd=folder,
                             capture_output=True, text=True, check=True).stdout
        times.append(float(out.strip().splitlines()[-1]))
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    work = scratch_folder("bench-deployables")
    before_tree, now_tree = work / "before", work / "now"
    # Installed from copies (git archive): a build writes into the project's folder.
    for tree, commit in ((before_tree, BEFORE), (now_tree, "HEAD")):
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    try:
        everything = venv(work / "venv-before", str(before_tree))
        result = {"before": {"commit": BEFORE, **everything, "import_s": {
            name: import_seconds(work / "venv-before", old) for name, (_, old) in DEPLOYABLES.items()}}}
        for name, (module, _) in DEPLOYABLES.items():
            built = venv(work / f"venv-{name}", f"{now_tree}[{name}]")
            built["import_s"] = import_seconds(work / f"venv-{name}", module)
            result[name] = built
            shutil.rmtree(work / f"venv-{name}")
    finally:
        shutil.rmtree(before_tree, ignore_errors=True)
        shutil.rmtree(now_tree, ignore_errors=True)
    rows = [(name, result[name]["packages"], f"{result[name]['mib']:,}", f"{result[name]['import_s']:.2f}",
             f"{result['before']['mib']:,}", f"{result['before']['import_s'][name]:.2f}",
             f"{result[name]['mib'] / result['before']['mib']:.2f}") for name in DEPLOYABLES]
    header = ("deployable (extra)", "packages", "venv MiB", "entry point import s",
              f"before ({BEFORE}, one list): venv MiB", "before: import s", "venv now / before")
    write("deployables", result, rows, header,
          "Each venv built from its extra alone under constraints.txt; import s: the median of 5 fresh interpreters "
          "importing the entry point (service: serving.app, speed: serving.speed.consumer, batch: jobs.recommend, "
          "orchestration: the Airflow Spark operator); before: every image installed one list of "
          f"{result['before']['packages']} packages. Command: make bench-deployables")
    done_with(work)


if __name__ == "__main__":
    main()
