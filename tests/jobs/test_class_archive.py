"""The archive of Spark's driver classes (jobs/lib/runtime/class_archive.py): the one `make setup` built is mapped
by a driver JVM, and a build whose JVM dies while it writes the archive leaves the previous one as it was."""
import os
import signal
import subprocess
import sys
import threading
import time

import psutil

from jobs.lib.runtime.class_archive import ARCHIVE, build, jvm_options
from tests.support import REPO, wait_until

SCRIPT = "from pyspark.sql import SparkSession; SparkSession.builder.master('local[1]').getOrCreate().range(3).count()"


def test_a_driver_jvm_maps_the_archive_setup_built(tmp_path):
    # make test builds it alongside the tests; make setup before them
    wait_until(ARCHIVE.is_file, 300, 1, f"{ARCHIVE}, which make setup builds")
    loaded = tmp_path / "classes.log"
    # -Xshare:on: a JVM that cannot map the archive stops instead of starting without it.
    env = {**os.environ, "SPARK_SUBMIT_OPTS": jvm_options(f"-Xshare:on -Xlog:class+load=info:file={loaded}")}
    subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=REPO, check=True, capture_output=True, timeout=120)
    shared = [line for line in loaded.read_text().splitlines()
              if "org.apache.spark.sql.SparkSession " in line or "org.apache.spark.SparkContext " in line]
    assert shared and all("shared objects file (top)" in line for line in shared), shared


def test_a_build_killed_while_it_writes_keeps_the_previous_archive(tmp_path):
    archive = tmp_path / "spark-classes.jsa"
    archive.write_bytes(b"the previous archive")
    result = {}
    script = tmp_path / "job.py"  # a small job: what it archives does not matter here
    script.write_text(SCRIPT)
    builder = threading.Thread(target=lambda: result.update(built=build(archive, script=script)))
    builder.start()
    killed = None
    while builder.is_alive() and killed is None:  # the JVM writes the archive as it exits: kill it then
        if list(tmp_path.glob("*.partial")):
            for process in psutil.process_iter(["cmdline"]):
                if any(f"ArchiveClassesAtExit={tmp_path}" in part for part in process.info["cmdline"] or ()):
                    os.kill(process.pid, signal.SIGKILL)
                    killed = process.pid
        time.sleep(0.005)
    builder.join(300)
    assert killed, "the JVM exited before it could be killed while writing"
    assert result == {"built": False}
    assert archive.read_bytes() == b"the previous archive"
    assert not list(tmp_path.glob("*.partial"))
