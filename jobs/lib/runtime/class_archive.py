"""A class-data-sharing archive of the classes a Spark driver loads (the JDK's dynamic AppCDS): a driver JVM that
maps it reaches its first answer in about half the time (3.8 s against 7.6 s on ML-100K, measured), and on small
data that start is most of a job. Built once per virtualenv by `make setup` (`python -m
jobs.lib.runtime.class_archive`); every driver the project starts takes it through `jvm_options`: the
Spark-session factory for in-process sessions, the DAG's operator for spark-submit.

A JVM maps the archive only if it matches: another JDK or changed jars make it start without it (a warning, no
error). A partly written archive would crash the JVM that maps it, so one is written under a temporary name and
renamed only once the JVM that wrote it has exited cleanly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("reco.class_archive")

ARCHIVE = Path(sys.prefix) / "spark-classes.jsa"  # beside the jars it describes: one per virtualenv


def jvm_options(existing: str = "", archive: Path = ARCHIVE) -> str:
    """`existing` JVM options (SPARK_SUBMIT_OPTS) plus the archive, when there is one and none is named yet."""
    if "SharedArchiveFile" in existing or not archive.is_file():
        return existing
    return f"{existing} -XX:SharedArchiveFile={archive}".strip()


def build(archive: Path = ARCHIVE, timeout_s: float = 600, script: Path | None = None) -> bool:
    """Run `script` (default: this module's workload, which loads the classes the jobs load: CSV and Parquet I/O,
    joins, windows, Arrow, ALS) in a JVM that dumps them at exit; keep the archive only if that JVM exited
    cleanly. False when it did not."""
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    # Not on top of an archive already mapped (the JVM refuses to start with both).
    inherited = [option for option in os.environ.get("SPARK_SUBMIT_OPTS", "").split()
                 if not option.startswith("-XX:SharedArchiveFile=")]
    env = {**os.environ, "SPARK_SUBMIT_OPTS": " ".join([*inherited, f"-XX:ArchiveClassesAtExit={partial}"])}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    from pyspark.find_spark_home import _find_spark_home

    env["SPARK_HOME"] = spark_home = _find_spark_home()
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        # spark-submit, not an in-process session: the archive is complete only once the JVM has exited.
        finished = subprocess.run([f"{spark_home}/bin/spark-submit", "--master", "local[2]",
                                   "--conf", "spark.ui.enabled=false", *([str(script)] if script else
                                                                          [__file__, "--workload"])],
                                  env=env, capture_output=True, text=True, timeout=timeout_s)
        if finished.returncode != 0 or not partial.is_file():
            said = [line for line in (finished.stdout + finished.stderr).splitlines() if line.strip()]
            log.warning("no class archive: the job that builds it failed (exit %s): %s", finished.returncode,
                        said[-1] if said else "nothing said")
            return False
        os.replace(partial, archive)
        return True
    finally:
        partial.unlink(missing_ok=True)


def _workload() -> None:
    """What the jobs do, on a few thousand synthetic ratings: the classes, not the numbers, are what it is for."""
    import numpy as np
    import pandas as pd
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    from conf.settings import ALSSettings
    from jobs.lib.model.als import ExplicitModel, fit_implicit
    from jobs.lib.model.scoring import als_top_n, item_neighbors, popularity
    from jobs.lib.model.splits import stratified_split

    spark = SparkSession.builder.appName("reco-class-archive").config("spark.sql.shuffle.partitions", "2").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(1, 200, 4000, dtype=np.int32),
                          "movie_id": rng.integers(1, 300, 4000, dtype=np.int32),
                          "rating": rng.integers(1, 6, 4000).astype(np.float32)})
    with tempfile.TemporaryDirectory() as folder:
        frame.to_csv(f"{folder}/ratings.csv", index=False)
        ratings = spark.read.csv(f"{folder}/ratings.csv", header=True, schema="user_id int, movie_id int, rating float")
        ratings.dropDuplicates(["user_id", "movie_id"]).write.parquet(f"{folder}/ratings.parquet")
        ratings = spark.read.parquet(f"{folder}/ratings.parquet").cache()
        train, test = stratified_split(ratings, 0.75, 1)
        settings = ALSSettings.model_validate({"implicit": {"rank": 4, "max_iter": 1},
                                               "explicit": {"rank": 4, "max_iter": 1,
                                                            "implicit_feature": False}})
        implicit = fit_implicit(train, settings.implicit, settings)
        implicit.write().overwrite().save(f"{folder}/implicit")
        ExplicitModel.fit(train, settings, (1.0, 5.0), implicit).predict(test).agg(F.avg("prediction")).first()
        als_top_n(implicit, train, 5).write.parquet(f"{folder}/top.parquet")
        item_neighbors(implicit, 5).toArrow()
        ranked = popularity(train).withColumn("place", F.row_number().over(Window.orderBy(F.desc("score"))))
        ranked.join(test, "movie_id", "left_anti").toPandas()
    spark.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if "--workload" in sys.argv:
        _workload()
        return
    if build():
        print(f"setup: Spark's driver classes archived in {ARCHIVE} (JVMs start in about half the time)")


if __name__ == "__main__":
    main()
