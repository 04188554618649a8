"""The Airflow DAG as a file: its integrity and cheap parsing. Its runs under a real scheduler (a nightly run that
publishes, a backfill on corrupted data that validation stops): tests/dags/test_dag_under_scheduler.py."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "movielens_recommendations"


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    return {"AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow")), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags")}


def test_dag_integrity(airflow_env, monkeypatch):
    for key, value in airflow_env.items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]  # as parsed (get_dag would consult a metadata database)
    from jobs import graph
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == graph.edges()  # the one graph (jobs/graph.py), which jobs/pipeline.py runs too
    assert {t.task_id for t in dag.tasks} == set(graph.BY_NAME)
    assert all(t.retries >= 1 and t.retry_exponential_backoff and t.execution_timeout for t in dag.tasks)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert set(dag.params.keys()) == {"dataset", "movielens_dir", "download_base_url", "force", "release"}
    spark_tasks = [t for t in dag.tasks if t.task_type == "SparkJobOperator"]
    assert {t.task_id for t in spark_tasks} == {"ingest", "validate", "clean", "train", "evaluate", "recommend",
                                                "publish", "experiment"}
    assert dag.get_task("publish").trigger_rule == "none_failed"  # publishes when no experiment was judged
    assert dag.get_task("report_run").trigger_rule == "all_done"


def test_dag_file_has_no_heavy_imports_at_top():
    """Airflow parses DAG files often: only the DAG file's functions may import project or data libraries."""
    tree = ast.parse((REPO / "dags" / "movielens_recommendations.py").read_text())
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            top_level.add((node.module or "").split(".")[0])
    heavy = {"pyspark", "pandas", "numpy", "pyarrow", "great_expectations", "redis", "serving"}
    assert top_level & heavy == set()
    assert "airflow" in top_level
    # the one config loader and the run's graph are allowed (the DAG's settings and steps go through them):
    # pydantic, YAML and plain Python, nothing heavier
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, conf.settings, jobs.graph; print(' '.join(sys.modules))"],
        cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert {name.split(".")[0] for name in loaded} & heavy == set()
    assert not {name for name in loaded if name.startswith("jobs.")} - {"jobs.graph"}
