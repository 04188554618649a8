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
