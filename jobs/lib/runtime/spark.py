"""The one Spark session factory."""
from __future__ import annotations

import logging
import os
import sys
import time

from conf.settings import Config
from jobs.lib.runtime.class_archive import jvm_options
from schemas.storage import join

log = logging.getLogger("reco")


def spark_session(config: Config, app_name: str):
    """The one SparkSession factory. Under spark-submit the master and memory given there win."""
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    builder = SparkSession.builder.appName(f"reco-{app_name}")
    # spark-submit starts the JVM first and hands Python its gateway; its --master and memory must win.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    if not submitted:
        builder = builder.master(config.spark.master).config("spark.driver.memory", config.spark.driver_memory)
        # Python workers run the driver's interpreter (the project's venv), not whatever python3 is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # The driver JVM starts here: it maps the archive of Spark's classes when setup built one.
        os.environ["SPARK_SUBMIT_OPTS"] = jvm_options(os.environ.get("SPARK_SUBMIT_OPTS", ""))
    settings = {
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        # ALS checkpoints go under <data root>/checkpoints; let Spark delete them once unreferenced.
        "spark.cleaner.referenceTracking.cleanCheckpoints": "true",
        **config.spark.extra,
    }
    # Spark authentication (spark.authenticate, conf/spark/spark-defaults.conf): the standalone daemons read the
    # shared secret from _SPARK_AUTH_SECRET, a driver only from its configuration: set here, so that it is on no
    # command line (Spark redacts it from its UI and logs).
    if secret := os.environ.get("_SPARK_AUTH_SECRET"):
        settings["spark.authenticate.secret"] = secret
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # per-call connection chatter
    # ALS lineage grows with every iteration; without a checkpoint dir ~20 iterations overflow the stack.
    spark.sparkContext.setCheckpointDir(join(config.data_root, "checkpoints"))
    log.info("spark session ready in %.2f s", time.perf_counter() - started)
    return spark
