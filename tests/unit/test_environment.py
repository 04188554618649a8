"""The installation itself: versions that must agree."""
from importlib.metadata import version


def test_pyspark_python_matches_spark_jars(spark):
    import pyspark
    # pyspark-client (pulled in by the Airflow Spark provider) overwrites pyspark's Python files: a mismatch
    # shows up as pyspark.__version__ differing from the JVM's Spark version.
    assert pyspark.__version__ == spark.version
    assert version("pyspark") == version("pyspark-client") == spark.version


def test_pandas_is_2x_for_pyspark():
    assert version("pandas").split(".")[0] == "2"


def test_xdist_groups_the_tests():
    """`make test` keeps the modules sharing the pipeline run on one xdist worker with --dist loadgroup; pytest
    9.2 silently breaks that grouping with pytest-xdist 3.8 (pytest-dev/pytest-xdist#1386): every worker would
    compute the shared run and the Airflow tests would race each other."""
    pytest_version = tuple(int(p) for p in version("pytest").split(".")[:2])
    assert pytest_version < (9, 2) or tuple(int(p) for p in version("pytest-xdist").split(".")[:2]) > (3, 8), \
        "pin pytest<9.2 (pyproject.toml) until pytest-xdist groups tests again"
