"""The one configuration loader.

`load_config()` reads `conf/local.yaml` (or the file named by `--config` / RECO_CONFIG), lays it over the
defaults below, applies the RECO_* environment overrides and validates the result. Unknown or badly typed keys
stop with a ConfigError naming the key, e.g. `als.implicit.rank: Input should be greater than 0`.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.movielens import DATASET_NAMES

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "conf" / "local.yaml"

# Environment variable -> dotted config key it overrides.
ENV_OVERRIDES = {
    "RECO_DATA_ROOT": "data.root",
    "RECO_DATASET": "data.dataset",
    "RECO_MOVIELENS_DIR": "data.movielens_dir",
    "RECO_DOWNLOAD_BASE_URL": "data.download_base_url",
    "RECO_SPARK_MASTER": "spark.master",
    "RECO_REDIS_URL": "redis.url",
    "RECO_REDIS_CLUSTER": "redis.cluster",
    "RECO_HOST": "serving.host",
    "RECO_PORT": "serving.port",
    "RECO_EVENTS_TOKEN": "events.token",
    "RECO_EXPERIMENTS_RELEASE": "experiments.release",
}


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Section):
    master: str = "local[2]"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(4, gt=0)
    extra: dict[str, str] = {}


class DataSettings(_Section):
    root: str = "./data"
    # None: detected from movielens_dir's files, or ml-100k when downloading (schemas/movielens.py)
    dataset: Literal[DATASET_NAMES] | None = None  # type: ignore[valid-type]
    movielens_dir: str | None = None
    download_base_url: str = "https://files.grouplens.org/datasets/movielens"


class ValidationSettings(_Section):
    min_ratings: int = Field(1000, ge=1)
    min_movies: int = Field(100, ge=1)
    ts_min: str = "1995-01-01"
    max_bad_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    max_bad_event_fraction: float = Field(0.01, ge=0.0, lt=1.0)  # bad events tolerated (clean drops them)

    @field_validator("ts_min")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        datetime.fromisoformat(value)
        return value

    @property
    def ts_min_epoch(self) -> int:
        return int(datetime.fromisoformat(self.ts_min).replace(tzinfo=timezone.utc).timestamp())


class CleanSettings(_Section):
    min_user_ratings: int = Field(1, ge=1)
    min_item_ratings: int = Field(1, ge=1)


class SplitSettings(_Section):
    train_ratio: float = Field(0.75, gt=0.0, lt=1.0)
    seed: int = 42


class ImplicitALSSettings(_Section):
    rank: int = Field(128, gt=0)
    reg_param: float = Field(1.0, ge=0.0)
    alpha: float = Field(3.0, gt=0.0)
    max_iter: int = Field(15, gt=0)
    confidence: Literal["linear", "log", "binary", "threshold"] = "linear"
    threshold: float = 3.5
    # Confidence scaled by (n_u / mean n_u) ** user_activity_exponent * (n_i / mean n_i) ** item_popularity_exponent:
    # Spark regularises each factor by reg_param * its rating count, which these exponents can offset.
    user_activity_exponent: float = Field(0.0, ge=-2.0, le=2.0)
    item_popularity_exponent: float = Field(0.0, ge=-2.0, le=2.0)
    seed: int = 42


class ExplicitALSSettings(_Section):
    rank: int = Field(30, gt=0)
    reg_param: float = Field(0.15, ge=0.0)
    max_iter: int = Field(20, gt=0)
    bias_reg: float = Field(3.0, ge=0.0)
    seed: int = 42
    # The implicit ALS score as a second predictor beside the residual ALS (jobs/train.py ExplicitModel); the two
    # weights and an intercept are fit by least squares on blend_holdout of each user's ratings.
    implicit_feature: bool = False
    blend_holdout: float = Field(0.1, gt=0.0, lt=1.0)


class TuneSettings(_Section):
    folds: int = Field(10, ge=2)   # K-fold cross-validation over each user's training ratings (1/K held out per fold)


class ALSSettings(_Section):
    implicit: ImplicitALSSettings = ImplicitALSSettings()
    explicit: ExplicitALSSettings = ExplicitALSSettings()
    checkpoint_interval: int = Field(5, gt=0)
    # User and item blocks of MLlib's ALS (both). Each block gets a copy of every factor its ratings need, so
    # fewer blocks move less data: on local[2] 2 blocks fit in half the time of MLlib's default 10. null: Spark's
    # default parallelism (the cores it has), which also suits a cluster.
    num_blocks: int | None = Field(None, gt=0)


class EvaluateSettings(_Section):
    k: int = Field(10, gt=0)


class GateSettings(_Section):
    min_ndcg_lift_over_popularity: float = 0.0
    max_ndcg_drop_vs_live: float = Field(0.02, ge=0.0)


class DriftSettings(_Section):
    """Largest change against the live run's clean data before publication stops (jobs/lib/drift.py)."""
    enabled: bool = True
    max_rating_psi: float = Field(0.1, ge=0.0)       # population stability index of the rating distribution
    max_activity_psi: float = Field(0.2, ge=0.0)     # of users per power-of-two bucket of their ratings
    max_genre_psi: float = Field(0.1, ge=0.0)        # of ratings per genre
    max_count_change: float = Field(0.5, ge=0.0)     # |users (or movies) / live's - 1|
    max_new_share: float = Field(0.5, ge=0.0, le=1.0)  # share of users (or movies) the live run did not have
    max_top_user_share_change: float = Field(0.01, ge=0.0)  # of the share of ratings by the 1% most active users


class RecommendSettings(_Section):
    # Who ranks the users' lists: the implicit ALS model, or the popularity baseline (most rated movies the user
    # has not rated), e.g. as an experiment's control.
    model: Literal["als", "popularity"] = "als"
    top_n: int = Field(50, gt=0)
    neighbors: int = Field(50, gt=0)
    popular_n: int = Field(100, gt=0)
    # Users x movies (and movies x movies for neighbours) up to which the lists are scored in the driver process:
    # below it Spark's stages (Python workers, a shuffle) cost more than the numpy work; above it the executors
    # share the work. 0: always on the executors.
    driver_max_scores: int = Field(1 << 31, ge=0)


class RedisSettings(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    cluster: bool = False  # RECO_REDIS_CLUSTER: url names a seed node of a Redis Cluster
    retention: int = Field(3, ge=2)  # the live version and at least one to roll back to
    socket_timeout: float = Field(0.5, gt=0)
    connect_timeout: float = Field(0.25, gt=0)

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class ServingSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    pointer_ttl: float = Field(1.0, ge=0.0)      # seconds a worker trusts its copy of the live pointer
    cache_entries: int = Field(20_000, ge=0)     # per-worker LRU of (version, key) values; 0 disables


class EventSettings(_Section):
    """The loop: `POST /v1/events` (serving/events.py) into a Redis stream, archived by ingest (jobs/lib/events.py)."""
    token: str | None = Field(None, repr=False)  # RECO_EVENTS_TOKEN; the bearer token writes need (none: 401)
    max_events_per_request: int = Field(100, ge=1, le=10_000)
    max_body_bytes: int = Field(65_536, ge=1024)
    backlog: int = Field(1_000_000, ge=1)       # events waiting in the stream at which intake answers 503
    archive: bool = True                        # ingest archives the stream (needs Redis); false: MovieLens only
    archive_page: int = Field(10_000, ge=1)     # stream entries read per XRANGE while archiving
    click_weight: float = Field(1.0, ge=0.0)    # implicit preference of one click (a rating r counts r)
    recent_max: int = Field(10, ge=1, le=100)   # recent ratings kept per user for "similar_to_recent"
    recent_ttl_days: int = Field(30, ge=1)      # a user's recent list expires this long after their last rating
    idempotency_ttl_s: int = Field(86_400, ge=1)  # an Idempotency-Key is remembered this long (a retry's window)


class ExperimentSettings(_Section):
    """Experiments between versions (schemas/experiments.py): how the service logs them and how they are judged
    (jobs/experiment.py). `release: canary` makes the nightly DAG publish each new version as a candidate at
    `canary_share` instead of flipping live; a later run promotes it or rolls it back by the judgement."""
    release: Literal["direct", "canary"] = "direct"
    canary_share: float = Field(0.1, gt=0.0, lt=1.0)
    sample_rate: float = Field(1.0, gt=0.0, le=1.0)     # users whose exposures are logged (by hash)
    exposure_backlog: int = Field(5_000_000, ge=1)      # stream entries (batches) waiting: beyond, not logged
    exposure_flush_s: float = Field(0.2, gt=0.0)        # a worker writes its buffered exposures this often
    attribution_hours: float = Field(24.0, gt=0.0)      # a click or rating counts this long after the answer
    conversion_rating: float = Field(4.0, gt=0.0)       # a rating this high of a shown movie is a conversion
    alpha: float = Field(0.05, gt=0.0, lt=0.5)          # two-sided significance level of the decision
    power: float = Field(0.8, gt=0.0, lt=1.0)           # for the users-needed estimate
    min_detectable_lift: float = Field(0.05, gt=0.0)    # relative change in clicks per exposure worth detecting
    min_users_per_arm: int = Field(100, ge=2)           # below this no decision is taken
    srm_alpha: float = Field(0.001, gt=0.0, lt=0.5)     # sample-ratio mismatch below this p-value
    max_error_rate_increase: float = Field(0.01, ge=0.0)  # guardrail: treatment's 5xx share minus control's
    max_p99_ratio: float = Field(1.5, gt=0.0)           # guardrail: treatment's p99 latency / control's


class Config(_Section):
    spark: SparkSettings = SparkSettings()
    data: DataSettings = DataSettings()
    validation: ValidationSettings = ValidationSettings()
    clean: CleanSettings = CleanSettings()
    split: SplitSettings = SplitSettings()
    tune: TuneSettings = TuneSettings()
    als: ALSSettings = ALSSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    gates: GateSettings = GateSettings()
    drift: DriftSettings = DriftSettings()
    recommend: RecommendSettings = RecommendSettings()
    redis: RedisSettings = RedisSettings()
    serving: ServingSettings = ServingSettings()
    events: EventSettings = EventSettings()
    experiments: ExperimentSettings = ExperimentSettings()
    source: str = ""  # which file this came from, for reports

    @property
    def data_root(self) -> str:
        return _resolve(self.data.root)

    @property
    def movielens_dir(self) -> str | None:
        return _resolve(self.data.movielens_dir) if self.data.movielens_dir else None


def _resolve(path: str) -> str:
    """Relative local paths are taken from the repository root; URIs (s3a://, hdfs://) pass through."""
    if "://" in path:
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (REPO_ROOT / p).resolve())


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate the configuration.

    Precedence, lowest first: built-in defaults, the YAML file (`path`, else RECO_CONFIG, else
    conf/local.yaml), RECO_* environment variables, then `overrides` (dotted keys, for tests and CLIs).
    """
    config_path = Path(path or os.environ.get("RECO_CONFIG") or DEFAULT_CONFIG)
    if not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path}")
    try:
        tree = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"{config_path}: the top level must be a mapping of sections")
    for env_name, dotted in ENV_OVERRIDES.items():
        if os.environ.get(env_name):  # set and not empty: an empty value means "not set"
            _set_dotted(tree, dotted, os.environ[env_name])
    for dotted, value in (overrides or {}).items():
        _set_dotted(tree, dotted, value)
    tree["source"] = str(config_path)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{config_path}: {problems}") from None
