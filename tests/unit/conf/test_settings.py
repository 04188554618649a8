"""The one config loader: defaults, YAML, environment overrides, and errors that name the key."""

import pytest

from conf import reference
from conf.settings import REPO_ROOT, ConfigError, load_config


def test_local_yaml_defaults(monkeypatch):
    for name in ("RECO_DATA_ROOT", "RECO_MOVIELENS_DIR", "RECO_REDIS_URL", "RECO_CONFIG", "RECO_PORT"):
        monkeypatch.delenv(name, raising=False)
    config = load_config()
    assert config.spark.master == "local[2]"
    assert config.data.dataset is None  # detected from the folder, or ml-100k when downloading
    assert config.data_root == str(REPO_ROOT / "data")
    assert config.recommend.top_n == 50 and config.evaluate.k == 10
    assert config.movielens_dir is None


def test_cluster_yaml_is_valid():
    config = load_config(REPO_ROOT / "conf" / "cluster.yaml")
    assert config.spark.master.startswith("spark://")
    assert config.data_root.startswith("s3a://")


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("RECO_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("RECO_MOVIELENS_DIR", "/srv/ml-100k")
    monkeypatch.setenv("RECO_REDIS_URL", "rediss://:secret@cache:6380/1")
    monkeypatch.setenv("RECO_PORT", "9001")
    config = load_config()
    assert config.data_root == str(tmp_path)
    assert config.movielens_dir == "/srv/ml-100k"
    assert config.redis.url == "rediss://:secret@cache:6380/1"
    assert config.serving.port == 9001


def test_the_operators_movielens_folder_is_a_root_and_a_runs_folder_is_not(monkeypatch):
    """Roots fence paths that arrive with a DAG run's conf (RECO_RUN_MOVIELENS_DIR), not the operator's own."""
    monkeypatch.setenv("RECO_MOVIELENS_ROOTS", "/srv/data,/srv/more")
    monkeypatch.setenv("RECO_MOVIELENS_DIR", "/home/me/ml-25m")
    config = load_config()
    assert config.data.movielens_roots == ["/srv/data", "/srv/more", "/home/me/ml-25m"]
    monkeypatch.setenv("RECO_RUN_MOVIELENS_DIR", "/elsewhere/ml-1m")
    config = load_config()
    assert config.movielens_dir == "/elsewhere/ml-1m" and "/elsewhere/ml-1m" not in config.data.movielens_roots


def test_reco_config_names_the_file(monkeypatch, tmp_path):
    custom = tmp_path / "custom.yaml"
    custom.write_text("als:\n  implicit:\n    rank: 7\n")
    monkeypatch.setenv("RECO_CONFIG", str(custom))
    config = load_config()
    assert config.als.implicit.rank == 7
    assert config.als.implicit.reg_param == 0.5  # untouched keys keep their defaults
    assert config.source == str(custom)


@pytest.mark.parametrize("yaml_text, named", [
    ("als:\n  implicit:\n    rank: -3\n", "als.implicit.rank"),
    ("als:\n  implicit:\n    rnk: 3\n", "als.implicit.rnk"),
    ("data:\n  dataset: ml-5m\n", "data.dataset"),
    ("redis:\n  url: http://localhost\n", "redis.url"),
    ("redis:\n  retention: 1\n", "redis.retention"),
    ("serving:\n  port: many\n", "serving.port"),
])
def test_bad_keys_are_named(tmp_path, yaml_text, named):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert named in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("spark: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_the_settings_tables_in_conf_readme_are_generated_from_settings():
    text = reference.README.read_text()
    assert text == reference.rendered(text), "conf/README.md is stale: run python -m conf.reference"
    for env in ("RECO_REDIS_CLUSTER", "RECO_EXPERIMENTS_RELEASE", "RECO_SPARK_DRIVER_MEMORY", "RECO_DAG_RETRY_DELAY_S"):
        assert f"`{env}`" in text


def test_a_yaml_without_model_settings_gives_the_tuned_model(tmp_path):
    """The defaults are the tuned settings: the best row of the tuning leaderboard they were chosen from."""
    minimal = tmp_path / "mine.yaml"
    minimal.write_text("data:\n  root: /srv/reco\n")
    config = load_config(minimal)
    leaderboard = REPO_ROOT / "benchmarks" / "results" / "tune_leaderboard_refined.md"
    lines = leaderboard.read_text().splitlines()[:3]
    header, _, best = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    tuned = dict(zip(header, best))
    implicit = config.als.implicit
    for key in ("rank", "max_iter", "reg_param", "alpha", "item_popularity_exponent", "user_activity_exponent"):
        assert getattr(implicit, key) == type(getattr(implicit, key))(tuned[key]), key
    assert implicit.confidence == tuned["confidence"] and config.als.explicit.implicit_feature is True
    assert config.als == load_config(REPO_ROOT / "conf" / "local.yaml").als


@pytest.mark.parametrize("name", ["local.yaml", "large.yaml", "cluster.yaml"])
def test_every_shipped_file_loads_and_states_only_what_it_changes(name):
    import yaml

    from conf.settings import Config
    path = REPO_ROOT / "conf" / name
    load_config(path)
    defaults = Config().model_dump()

    def same_as_default(tree, default, where=""):
        for key, value in tree.items():
            if isinstance(value, dict) and isinstance(default.get(key), dict) and key != "extra":
                same_as_default(value, default[key], f"{where}{key}.")
            else:
                assert value != default.get(key), f"{name}: {where}{key} repeats the default"
    same_as_default(yaml.safe_load(path.read_text()) or {}, defaults)
