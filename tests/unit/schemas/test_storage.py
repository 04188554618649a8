"""schemas/storage.py: Parquet folders written by pyarrow that Spark reads as its own."""
import pyarrow as pa

from schemas.storage import read_table, replace_folder_with_table


def test_a_column_added_to_a_table_spark_wrote_is_what_spark_reads_back(spark, tmp_path):
    """A table read from Spark's files carries Spark's row schema in its metadata; written back with a new
    column, Spark must see the column (it read the stale metadata and dropped it: `because` vanished)."""
    folder = str(tmp_path / "lists")
    spark.createDataFrame([(1, 10), (2, 20)], "user_id int, movie_id int").write.parquet(folder)
    table = read_table(folder)
    replace_folder_with_table(folder, table.append_column("because_id", pa.array([5, None], pa.int32())))
    rows = spark.read.parquet(folder).orderBy("user_id").collect()
    assert [tuple(row) for row in rows] == [(1, 10, 5), (2, 20, None)]
