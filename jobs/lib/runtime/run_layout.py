"""The run: its id rules, the folder layout every job writes under, and the version id it publishes as.

Every job writes only under `<data root>/runs/<run id>/`, so a rerun overwrites its own outputs and nothing else.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from conf.settings import Config
from jobs.lib.runtime.errors import JobError
from schemas.storage import is_local, join, write_text

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

_LAYOUT = {
    "manifest": "ingest/manifest.json",
    "raw_ratings": "ingest/ratings.parquet",
    "raw_movies": "ingest/movies.parquet",
    "raw_tags": "ingest/tags.parquet",
    "raw_genome": "ingest/genome.parquet",
    "staged_source": "ingest/source",
    "events": "ingest/events.json",
    "exposures": "ingest/exposures.json",
    "validation": "validate",
    "validation_report": "validate/report.json",
    "clean_ratings": "clean/ratings.parquet",
    "clean_movies": "clean/movies.parquet",
    "clean_tags": "clean/tags.parquet",
    "clean_genome": "clean/genome.parquet",
    "clean_clicks": "clean/clicks.parquet",
    "clean_dismissed": "clean/dismissed.parquet",
    "clean_report": "clean/report.json",
    "split_train": "train/split/train.parquet",
    "split_test": "train/split/test.parquet",
    "models": "train/models",
    "mlflow_model": "train/mlflow_model",
    "train_report": "train/report.json",
    "metrics": "metrics.json",
    "evaluation_report": "report.html",
    "user_recs": "recommend/user_recs.parquet",
    "item_neighbors": "recommend/item_neighbors.parquet",
    "content_neighbors": "recommend/content_neighbors.parquet",
    "new_picks": "recommend/new_picks.parquet",
    "new_lists": "recommend/new_lists.parquet",
    "popular": "recommend/popular.parquet",
    "movie_stats": "recommend/movie_stats.parquet",
    "fold_in_bundle": "recommend/fold_in",
    "recommend_report": "recommend/report.json",
    "publish_values": "publish/values.parquet",
    "publish_values_built": "publish/values.json",
    "publish_report": "publish.json",
    "tune": "tune",
    "experiment_report": "experiment/report.json",
    "experiment_html": "experiment/report.html",
}


@dataclass(frozen=True)
class RunPaths:
    """Where one run keeps everything: `paths.metrics`, `paths.clean_ratings`, ... (see _LAYOUT)."""

    data_root: str
    run_id: str

    @property
    def root(self) -> str:
        return join(self.data_root, "runs", self.run_id)

    def __getattr__(self, name: str) -> str:
        try:
            return join(self.root, _LAYOUT[name])
        except KeyError:
            raise AttributeError(name) from None

    def model(self, stage: str, kind: str) -> str:
        """A saved model: stage `eval` (fit on the evaluation split) or `prod` (all clean ratings)."""
        return join(self.models, stage, kind)


def run_paths(config: Config, run_id: str) -> RunPaths:
    if not RUN_ID_PATTERN.match(run_id or ""):
        raise JobError(f"run id {run_id!r} must match {RUN_ID_PATTERN.pattern}")
    return RunPaths(config.data_root, run_id)


def sanitize_run_id(raw: str) -> str:
    """Airflow run ids ('scheduled__2026-11-23T00:00:00+00:00') made safe for paths and Redis keys."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("_.-")[:128]


def new_version_id(run_id: str) -> str:
    """A publication's version: UTC time to the millisecond, then the run id (sorts by time, names its run)."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')[:-3]}-{run_id}"


def mark_latest(config: Config, run_id: str) -> None:
    """Point runs/latest at a run whose outputs are complete (a symlink locally, a small text object elsewhere)."""
    runs = join(config.data_root, "runs")
    if is_local(runs):
        tmp = Path(runs) / f".latest.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        os.replace(tmp, Path(runs) / "latest")  # atomic
    else:
        write_text(join(runs, "latest"), run_id)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
