"""The one configuration loader and the one place for defaults.

The defaults below are the production settings (the tuned model included): a YAML file states only what it
changes. `load_config()` reads `conf/local.yaml` (or the file named by `--config` / RECO_CONFIG), lays it over
these defaults, applies the RECO_* environment overrides and validates the result. Unknown or badly typed keys
stop with a ConfigError naming the key, e.g. `als.implicit.rank: Input should be greater than 0`.
Every key with its default and description: conf/README.md, generated from this file (`python -m conf.reference`).
"""
from __future__ import annotations

import os
from datetime import UTC, datetime
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
    "RECO_MOVIELENS_ROOTS": "data.movielens_roots",
    "RECO_SPARK_MASTER": "spark.master",
    "RECO_REDIS_URL": "redis.url",
    "RECO_REDIS_CLUSTER": "redis.cluster",
    "RECO_HOST": "serving.host",
    "RECO_PORT": "serving.port",
    "RECO_PAGE_EVENTS": "serving.page_events",
    "RECO_EVENTS_TOKEN": "events.token",
    "RECO_EXPERIMENTS_RELEASE": "experiments.release",
    "RECO_SPARK_DRIVER_MEMORY": "spark.driver_memory",
    "RECO_DAG_RETRY_DELAY_S": "dag.retry_delay_s",
    "RECO_MLFLOW_TRACKING_URI": "tracking.uri",
    # A folder a DAG run's conf names (the DAG passes it so): unlike the operator's own RECO_MOVIELENS_DIR, which
    # the loader adds to data.movielens_roots, it must lie under those roots.
    "RECO_RUN_MOVIELENS_DIR": "data.movielens_dir",
}


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Section):
    master: str = Field("local[2]", description="Spark master outside spark-submit (under it, --master wins)")
    driver_memory: str = Field("4g", description="driver memory outside spark-submit; the DAG passes it to "
                                                 "spark-submit's --driver-memory")
    shuffle_partitions: int = Field(4, gt=0, description="spark.sql.shuffle.partitions (2 cores gain nothing "
                                                         "from more tasks)")
    extra: dict[str, str] = Field({}, description="any other Spark setting, e.g. spark.executor.memory")


class DataSettings(_Section):
    root: str = Field("./data", description="runs, downloads, the event archive and checkpoints live here "
                                            "(a local path, relative to the repository, or s3a://...)")
    dataset: Literal[DATASET_NAMES] | None = Field(  # type: ignore[valid-type]
        None, description="MovieLens release; null: detected from movielens_dir's files (asked for only where "
                          "they fit several), else ml-100k when downloading")
    movielens_dir: str | None = Field(None, description="a local MovieLens folder instead of the download; "
                                                        "it must lie under one of movielens_roots")
    movielens_roots: list[str] = Field(["./data"], description="folders a movielens_dir may lie under (symlinks "
                                                               "resolved; comma-separated in the environment); the "
                                                               "operator's own RECO_MOVIELENS_DIR is added to them")
    download_base_url: str = Field("https://files.grouplens.org/datasets/movielens",
                                   description="where the release zips are downloaded from; it must be one of "
                                               "download_allowed or under it")
    download_allowed: list[str] = Field(["https://files.grouplens.org/datasets/movielens"],
                                        description="download locations allowed (scheme, host and port exactly, "
                                                    "then the path); a redirect may not leave the host")
    download_sha256: dict[str, str] = Field({}, description="sha256 of a release's zip by release name, for "
                                                            "releases without a digest pinned in schemas/movielens.py "
                                                            "or to replace it")
    max_download_mb: int = Field(1024, ge=1, description="a download larger than this is stopped and deleted")
    download_deadline_s: float = Field(3600.0, gt=0, description="a download that takes longer than this in all "
                                       "is stopped and deleted (each read also times out after 60 s)")
    max_extract_mb: int = Field(4096, ge=1, description="a zip whose files would take more than this is not "
                                                        "extracted")

    @field_validator("movielens_roots", "download_allowed", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


class ValidationSettings(_Section):
    min_ratings: int = Field(1000, ge=1, description="row-count floor of the ratings")
    min_movies: int = Field(100, ge=1, description="row-count floor of the catalogue")
    ts_min: str = Field("1995-01-01", description="earliest rating timestamp (MovieLens began in 1995)")
    max_bad_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="share of bad rows tolerated by row-level "
                                                                     "expectations (0: strict; clean drops them)")
    max_bad_event_fraction: float = Field(0.01, ge=0.0, lt=1.0, description="share of bad archived events, and "
                                          "of bad user tags, tolerated (clean drops and counts them)")
    max_tag_length: int = Field(255, ge=1, description="longest user tag kept (longer ones are bad rows, as are "
                                                       "empty ones); bad tags are tolerated as bad events are")

    @field_validator("ts_min")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        datetime.fromisoformat(value)
        return value

    @property
    def ts_min_epoch(self) -> int:
        return int(datetime.fromisoformat(self.ts_min).replace(tzinfo=UTC).timestamp())


class CleanSettings(_Section):
    min_user_ratings: int = Field(1, ge=1, description="users with fewer ratings are dropped (after movies)")
    min_item_ratings: int = Field(1, ge=1, description="movies with fewer ratings are dropped")


class SplitSettings(_Section):
    train_ratio: float = Field(0.75, gt=0.0, lt=1.0, description="share of each user's ratings in the "
                                                                 "evaluation split's training part")
    seed: int = Field(42, description="seed of the split's hash")
    # One fit instead of two at scale: the evaluation model serves, the evaluated people folded in from all their
    # ratings (jobs/lib/model/fold_in.py); what their held-out ratings would add to the item factors is small.
    evaluation_people: int | None = Field(None, ge=1, description="people whose test part is held out (a seeded "
                                          "random sample); null: everyone (the GUIDE's protocol) and a second fit "
                                          "on every rating for production")


class ImplicitALSSettings(_Section):
    """The ranking model. Defaults chosen by `make tune` on ML-100K (10-fold cross-validation within the training
    part; the leaderboard in benchmarks/results/tune_leaderboard.md)."""
    rank: int = Field(128, gt=0, description="latent factors")
    reg_param: float = Field(0.5, ge=0.0, description="regularisation (scaled by each factor's rating count)")
    alpha: float = Field(1.0, gt=0.0, description="confidence = 1 + alpha * preference")
    max_iter: int = Field(15, gt=0, description="ALS iterations")
    confidence: Literal["linear", "log", "binary", "threshold"] = Field(
        "linear", description="preference from a rating: linear, log, binary or threshold")
    threshold: float = Field(3.5, description="ratings at or above count as liked (confidence: threshold only)")
    # Spark regularises each factor by reg_param * its rating count, which these exponents can offset.
    user_activity_exponent: float = Field(0.0, ge=-2.0, le=2.0,
                                          description="confidence x (n_u / mean n_u) ** this, per user")
    item_popularity_exponent: float = Field(0.25, ge=-2.0, le=2.0,
                                            description="confidence x (n_i / mean n_i) ** this, per movie")
    seed: int = Field(42, description="ALS seed")


class ExplicitALSSettings(_Section):
    """The rating model (evaluation only: RMSE and MAE). Rank 30 / reg 0.15 / bias shrinkage 3 and the
    implicit-score blend by measurement (the explicit model's rows of benchmarks/results/quality.md)."""
    rank: int = Field(30, gt=0, description="latent factors of the residual model")
    reg_param: float = Field(0.15, ge=0.0, description="regularisation")
    max_iter: int = Field(20, gt=0, description="ALS iterations")
    bias_reg: float = Field(3.0, ge=0.0, description="shrinkage of the user and item bias terms (0: no bias model)")
    seed: int = Field(42, description="ALS seed")
    implicit_feature: bool = Field(True, description="blend in the implicit ALS score (which movies a user chose "
                                                     "to rate); costs one more implicit fit")
    blend_holdout: float = Field(0.1, gt=0.0, lt=1.0, description="share of each user's ratings the blend's "
                                                                  "least-squares weights are fit on")


class TuneSettings(_Section):
    folds: int = Field(10, ge=2, description="K-fold cross-validation over each user's training ratings")


class ALSSettings(_Section):
    implicit: ImplicitALSSettings = ImplicitALSSettings()
    explicit: ExplicitALSSettings = ExplicitALSSettings()
    checkpoint_interval: int = Field(5, gt=0, description="iterations between checkpoints (long lineages "
                                                          "overflow the stack)")
    # Each block gets a copy of every factor its ratings need, so fewer blocks move less data.
    num_blocks: int | None = Field(None, gt=0, description="MLlib's user and item blocks; null: Spark's "
                                                           "parallelism (2 on local[2]: half the fit time of 10)")


class EvaluateSettings(_Section):
    k: int = Field(10, gt=0, description="list length the metrics are computed at")


class GateSettings(_Section):
    min_ndcg_lift_over_popularity: float = Field(0.0, description="ALS NDCG@k must beat popularity's by more")
    max_ndcg_drop_vs_live: float = Field(0.02, ge=0.0, description="and may not fall more below the live "
                                                                   "version's")


class DriftSettings(_Section):
    """Largest change against the live run's clean data before publication stops (jobs/lib/data/drift.py)."""
    enabled: bool = Field(True, description="compare with the live run at all")
    max_rating_psi: float = Field(0.1, ge=0.0, description="population stability index of the rating distribution")
    max_activity_psi: float = Field(0.2, ge=0.0, description="PSI of users per power-of-two bucket of their ratings")
    max_genre_psi: float = Field(0.1, ge=0.0, description="PSI of ratings per genre")
    max_count_change: float = Field(0.5, ge=0.0, description="|users (or movies) / the live run's - 1|")
    max_new_share: float = Field(0.5, ge=0.0, le=1.0, description="share of users (or movies) the live run did "
                                                                  "not have")
    max_top_user_share_change: float = Field(0.01, ge=0.0, description="change of the share of ratings by the 1% "
                                                                       "most active users")


class RecommendSettings(_Section):
    model: Literal["als", "popularity"] = Field(
        "als", description="who ranks the users' lists: ALS, or the popularity baseline (an experiment's control)")
    top_n: int = Field(50, gt=0, description="movies published per user")
    neighbors: int = Field(50, gt=0, description="similar movies published per movie")
    popular_n: int = Field(100, gt=0, description="movies a popular list answers at most (overall and per genre)")
    filter_pool: int = Field(1000, gt=0, description="movies kept per popular list for the service to fill "
                             "filtered answers from (genres, years, exclusions)")
    new_picks: int = Field(10, ge=0, description="new movies (no ALS factors yet) published per user, those their "
                           "ALS vector scores highest (factors mapped from content), for serving.new_slots")
    # Below it Spark's stages (Python workers, a shuffle) cost more than the numpy work; above it the executors
    # are faster (bench-scale: benchmarks/results/scale.md).
    driver_max_scores: int = Field(1 << 31, ge=0, description="users x movies (movies x movies for neighbours) "
                                                              "up to which lists are scored in the driver; 0: "
                                                              "always on the executors")


class ContentSettings(_Section):
    """A movie's content vector (jobs/lib/model/content.py): the weight of each block, each block unit-length."""
    genre_weight: float = Field(1.0, ge=0.0, description="weight of the genres in a movie's content vector")
    decade_weight: float = Field(0.5, ge=0.0, description="weight of the decade of its year")
    # By measurement: the year says how many people saw a movie, which the decade blurs (the cold-movie protocol,
    # benchmarks/results/quality.md).
    year_weight: float = Field(0.5, ge=0.0, description="weight of its year itself")
    # By measurement: title words add nothing to the cold-movie protocol (benchmarks/results/quality.md).
    title_weight: float = Field(0.0, ge=0.0, description="weight of its title words (TF-IDF)")
    # By measurement on the tagged ml-latest-small (2016): tags lift the cold-movie NDCG@10 from 3.98x to 4.62x the
    # genre baseline; weights 0.5 to 2 are within the seeds' noise (benchmarks/results/quality.md).
    tag_weight: float = Field(1.0, ge=0.0, description="weight of its user tags (TF-IDF, people per tag as counts)")
    genome_weight: float = Field(1.0, ge=0.0, description="weight of its tag genome scores (centred per tag)")
    vocabulary: int = Field(1000, ge=1, description="most frequent title words and tags kept as columns")
    # By measurement: the best of 1, 10 and 100 on the cold-movie protocol (benchmarks/results/quality.md).
    factor_reg: float = Field(10.0, gt=0.0, description="ridge penalty of the content -> ALS factors mapping that "
                                                        "places new movies among rated ones")


class RedisSettings(_Section):
    url: str = Field("redis://127.0.0.1:6379/0", description="redis://[:password@]host:port/db, rediss:// for TLS")
    cluster: bool = Field(False, description="url names a seed node of a Redis Cluster")
    retention: int = Field(3, ge=2, description="versions kept for rollback, the live one included")
    socket_timeout: float = Field(0.5, gt=0, description="the service's read timeout (s): a dead Redis is a "
                                                         "503, never a hang")
    connect_timeout: float = Field(0.25, gt=0, description="the service's connect timeout (s)")
    lease_ttl_s: float = Field(30.0, gt=0, description="a publication's or an archive's lease lives this long "
                                                       "unless renewed (a crashed holder blocks no longer)")
    lease_wait_s: float = Field(60.0, ge=0, description="how long a run waits for another run's lease before it "
                                                        "stops naming the holder (exit 3: retried)")

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class ServingSettings(_Section):
    host: str = Field("127.0.0.1", description="address gunicorn binds")
    port: int = Field(8000, gt=0, lt=65536, description="port gunicorn binds")
    pointer_ttl: float = Field(1.0, ge=0.0, description="seconds a worker trusts its copy of the live pointer "
                                                        "(0: read it every time)")
    page_events: bool = Field(False, description="demo only: the page may post ratings and dismissals for the user "
                                                 "on display through POST /demo/events, without the events token "
                                                 "(whoever reaches the page can then post them)")
    cache_mb: float = Field(128, ge=0, description="per-worker LRU of immutable (version, key) values, in MB they "
                                                    "hold decoded (a list of 50 items about 40 KB; 0: off)")
    people_cache_mb: float = Field(8, ge=0, description="per-worker LRU of what people did since the version "
                                   "(rated, dismissed, fold-in list), kept right by Redis's invalidation pushes, in "
                                   "MB as Redis holds them (0: read on every request; Redis Cluster: always read)")
    people_cache_stale_s: float = Field(1.0, ge=0.5, description="the people copy answers only while Redis "
                                        "answered a PING sent less than this long ago: how stale an answer may be "
                                        "when the path to Redis dies without a word (a PING goes every 0.25 s, so "
                                        "at least 0.5)")
    new_slots: int = Field(1, ge=0, description="of a person's k recommendations, up to this many go to new "
                           "movies (nobody rated them yet) their ALS vector scores highest, marked new (0: none)")


class EventSettings(_Section):
    """The loop: `POST /v1/events` (serving/intake.py) into a Redis stream, archived by ingest
    (jobs/lib/loop/event_archive.py)."""
    token: str | None = Field(None, repr=False, description="the bearer token POST /v1/events needs (null: "
                                                            "intake closed, 401); never logged or passed to jobs")
    max_events_per_request: int = Field(100, ge=1, le=10_000, description="events in one request")
    max_body_bytes: int = Field(65_536, ge=1024, description="request body size")
    backlog: int = Field(1_000_000, ge=1, description="events waiting in the stream at which intake answers 503 "
                                                      "backlog_full (at most about 250 bytes each in Redis)")
    max_per_minute: int = Field(30_000, ge=1, description="events the intake takes per minute, all senders of "
                                                          "its token together (429 beyond)")
    max_per_user_per_minute: int = Field(300, ge=1, description="events one user id may get per minute (429 "
                                                                "beyond)")
    archive: bool = Field(True, description="ingest archives the stream (needs Redis); false: MovieLens alone")
    archive_page: int = Field(10_000, ge=1, description="stream entries read per XRANGE while archiving")
    click_weight: float = Field(1.0, ge=0.0, description="implicit preference of one click (a rating counts its "
                                                         "stars)")
    recent_max: int = Field(10, ge=1, le=100, description="latest ratings kept per user for similar_to_recent")
    recent_ttl_days: int = Field(30, ge=1, description="a user's recent list expires this long after their last "
                                                       "rating")
    idempotency_ttl_s: int = Field(86_400, ge=1, description="an Idempotency-Key is remembered this long: a retry "
                                                             "within it appends nothing")


class SpeedSettings(_Section):
    """The speed layer (serving/speed/): what one process may hold between two versions."""
    max_people: int = Field(1_000_000, ge=1, description="people with events since the version it holds at most "
                            "(0.5 KB for one with one event, 0.8 KB with five, beside the version's model); beyond, "
                            "the least recently active are let go: their answers fall back to the version's list "
                            "until the next one")
    write_batch: int = Field(500, ge=1, description="fresh lists written per pipeline (a rebuild writes everyone)")
    claim_idle_s: float = Field(30.0, gt=0, description="entries another consumer of the group left pending this "
                                "long are claimed (a renamed or retired speed layer), checked as often")


class ExperimentSettings(_Section):
    """Experiments between versions (schemas/experiments.py): how the service logs them and how they are judged
    (jobs/experiment.py). `release: canary` makes the nightly DAG publish each new version as a candidate at
    `canary_share` instead of flipping live; a later run promotes it or rolls it back by the judgement."""
    release: Literal["direct", "canary"] = Field("direct", description="direct: each run's version goes live; "
                                                                       "canary: a candidate at canary_share")
    canary_share: float = Field(0.1, gt=0.0, lt=1.0, description="share of users a canary serves")
    sample_rate: float = Field(1.0, gt=0.0, le=1.0, description="users whose exposures are logged (all of a "
                                                                "user's or none, by hash)")
    exposure_backlog_mb: int = Field(256, ge=1, description="megabytes of exposures waiting in their stream "
                                                             "beyond which logging stops (Redis memory they may take)")
    exposure_flush_s: float = Field(0.2, gt=0.0, description="each worker writes its buffered exposures this "
                                                             "often (s)")
    attribution_hours: float = Field(24.0, gt=0.0, description="a click or rating counts this long after the "
                                                               "answer it came from")
    conversion_rating: float = Field(4.0, gt=0.0, description="a rating this high of a shown movie is a "
                                                              "conversion")
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="two-sided significance level of the decision")
    power: float = Field(0.8, gt=0.0, lt=1.0, description="power of the users-needed estimate")
    min_detectable_lift: float = Field(0.05, gt=0.0, description="relative change in clicks per exposure the "
                                                                 "users-needed estimate aims at")
    min_users_per_arm: int = Field(100, ge=2, description="below this no decision is taken")
    srm_alpha: float = Field(0.001, gt=0.0, lt=0.5, description="sample-ratio mismatch below this p-value stops "
                                                                "the experiment")
    max_error_rate_increase: float = Field(0.01, ge=0.0, description="guardrail: treatment's 5xx share minus "
                                                                     "control's")
    max_p99_ratio: float = Field(1.5, gt=0.0, description="guardrail: treatment's p99 latency / control's")


class DagSettings(_Section):
    """The Airflow DAG (dags/movielens_recommendations.py)."""
    retry_delay_s: float = Field(60.0, gt=0.0, description="seconds before a task's first retry; doubles on each "
                                                           "retry, at most 30 minutes")


class TrackingSettings(_Section):
    enabled: bool = Field(True, description="record each run, its model and the published versions in MLflow "
                                            "(jobs/lib/tracking/); MLflow being down never stops a run")
    uri: str | None = Field(None, description="MLflow tracking URI, e.g. http://mlflow:5000; null: a SQLite store "
                                              "under the data root (<data root>/mlflow/mlflow.db), which "
                                              "`make mlflow` serves")
    experiment: str = Field("movielens-recommendations", description="the MLflow experiment every run goes into")
    registered_model: str = Field("movielens-als", description="the registered model whose versions follow "
                                                               "publication (aliases live, previous, control, "
                                                               "treatment)")
    timeout_s: float = Field(5.0, gt=0, description="each call to a tracking server gives up after this "
                                                    "(no retries: the next run or publication catches up)")


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
    content: ContentSettings = ContentSettings()
    redis: RedisSettings = RedisSettings()
    serving: ServingSettings = ServingSettings()
    events: EventSettings = EventSettings()
    speed: SpeedSettings = SpeedSettings()
    experiments: ExperimentSettings = ExperimentSettings()
    dag: DagSettings = DagSettings()
    tracking: TrackingSettings = TrackingSettings()
    source: str = ""  # which file this came from, for reports

    @property
    def data_root(self) -> str:
        return resolve_path(self.data.root)

    @property
    def movielens_dir(self) -> str | None:
        return resolve_path(self.data.movielens_dir) if self.data.movielens_dir else None


def resolve_path(path: str) -> str:
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
    if os.environ.get("RECO_MOVIELENS_DIR"):  # the operator's own folder is their decision: a root of its own
        data = tree.setdefault("data", {})
        roots = DataSettings._comma_separated(data.get("movielens_roots", DataSettings().movielens_roots))
        data["movielens_roots"] = [*roots, os.environ["RECO_MOVIELENS_DIR"]]
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
