"""The job command line: the exit codes the DAG reads (2: stopped on purpose, not retried; 3: may pass, retried)
and the timing line the demo breakdown reads."""
import logging
import re

import pytest

from jobs.lib.runtime.cli import job_main
from jobs.lib.runtime.errors import JobError, TransientJobError


def run_cli(monkeypatch, run, *args):
    monkeypatch.setattr("sys.argv", ["job", "--run-id", "r1", *args])
    monkeypatch.setattr("jobs.lib.runtime.cli._stop_spark", lambda: None)  # the tests' shared session stays up
    job_main("demo", "a job", run)


@pytest.mark.parametrize("error, code", [(JobError("bad data"), 2), (TransientJobError("redis down"), 3)])
def test_expected_failures_exit_with_their_code_and_message(monkeypatch, capsys, error, code):
    def run(config, run_id):
        raise error
    with pytest.raises(SystemExit) as stopped:
        run_cli(monkeypatch, run)
    assert stopped.value.code == code
    assert f"demo failed: {error}" in capsys.readouterr().err


def test_a_finished_job_prints_its_result_and_logs_its_timing(monkeypatch, capsys, caplog):
    caplog.set_level(logging.INFO, logger="reco")
    run_cli(monkeypatch, lambda config, run_id: {"run": run_id})
    assert '"run": "r1"' in capsys.readouterr().out
    timing = [r.getMessage() for r in caplog.records if r.getMessage().startswith("timing ")]
    assert len(timing) == 1 and '"job": "demo"' in timing[0] and '"imports_s": ' in timing[0]


def test_a_missing_input_is_named_and_not_retried(monkeypatch, capsys, spark, tmp_path):
    """A job run before the jobs it reads: exit 2 (the DAG does not retry it) with the path, not a traceback;
    from Spark (a Parquet folder) and from Python (a JSON report) alike."""
    import pyarrow.fs
    for read in (lambda: spark.read.parquet(str(tmp_path / "clean" / "ratings.parquet")),
                 lambda: open(tmp_path / "evaluate" / "metrics.json"),
                 lambda: pyarrow.fs.LocalFileSystem().open_input_stream(str(tmp_path / "ingest" / "manifest.json"))):
        with pytest.raises(SystemExit) as stopped:
            run_cli(monkeypatch, lambda config, run_id: read())
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert "demo failed: missing input" in err and "run the jobs before demo for run id r1 first" in err
        assert re.search(rf"missing input (file:)?{re.escape(str(tmp_path))}/\w+/", err) and "Traceback" not in err


def test_other_failures_are_not_called_missing_inputs(monkeypatch):
    def run(config, run_id):
        raise RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):  # a traceback and exit 1: the DAG retries it
        run_cli(monkeypatch, run)
