"""conf/preflight.py: a setting that cannot work is named in one line before anything slow starts."""
import socket
import subprocess
import sys

from conf.preflight import problems
from conf.settings import REPO_ROOT


def write_ml100k_layout(folder):
    folder.mkdir()
    for name in ("u.data", "u.item"):
        (folder / name).write_text("")


def test_each_bad_setting_is_named(tmp_path):
    write_ml100k_layout(tmp_path / "ml-100k")
    (tmp_path / "empty").mkdir()
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    cases = {
        "RECO_CONFIG /nowhere.yaml: no such file": {"RECO_CONFIG": "/nowhere.yaml"},
        f"RECO_MOVIELENS_DIR {tmp_path}/missing: no such folder": {"RECO_MOVIELENS_DIR": str(tmp_path / "missing")},
        "holds no MovieLens layout": {"RECO_MOVIELENS_DIR": str(tmp_path / "empty")},
        "but the dataset is set to ml-25m": {"RECO_MOVIELENS_DIR": str(tmp_path / "ml-100k"), "RECO_DATASET": "ml-25m"},
        "RECO_DATASET ml-7m: not a MovieLens release": {"RECO_DATASET": "ml-7m"},
        "scheme http:// is not redis://": {"RECO_REDIS_URL": "http://127.0.0.1:6379"},
        "the port is not a number": {"RECO_REDIS_URL": "redis://127.0.0.1:port/0"},
        f"no Redis answers at 127.0.0.1:{port}": {"RECO_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
    }
    for expected, env in cases.items():
        found = problems(env)
        assert len(found) == 1 and expected in found[0], (env, found)
    assert problems({"RECO_MOVIELENS_DIR": str(tmp_path / "ml-100k")}) == []


def test_a_bad_config_value_is_named_by_the_loader(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("als:\n  implicit:\n    rank: -3\n")
    monkeypatch.setenv("RECO_CONFIG", str(bad))
    found = problems({"RECO_CONFIG": str(bad)})
    assert len(found) == 1 and "als.implicit.rank" in found[0]


def test_the_check_runs_without_the_virtualenvs_packages(tmp_path):
    """As `make demo` runs it before setup on a fresh machine: python without site-packages."""
    result = subprocess.run([sys.executable, "-S", "-m", "conf.preflight", "demo"], cwd=REPO_ROOT,
                            capture_output=True, text=True,
                            env={"RECO_MOVIELENS_DIR": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"demo: RECO_MOVIELENS_DIR {tmp_path}/missing: no such folder "
                                                  "(unset it to download MovieLens 100K)"]


def test_make_demo_stops_before_setup_with_the_one_line(tmp_path):
    for target in ("demo", "pipeline", "airflow"):
        result = subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT), target],
                                capture_output=True, text=True, timeout=60,
                                env={"RECO_CONFIG": str(tmp_path / "nowhere.yaml"), "PATH": "/usr/bin:/bin"})
        assert result.returncode == 2 and result.stdout == ""
        [line] = result.stderr.strip().splitlines()
        assert f"make {target}: RECO_CONFIG {tmp_path}/nowhere.yaml: no such file" in line
