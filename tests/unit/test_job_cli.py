"""The job command line: the exit codes the DAG reads (2: stopped on purpose, not retried; 3: may pass, retried)
and the timing line the demo breakdown reads."""
import logging

import pytest

from jobs.lib.errors import JobError, TransientJobError
from jobs.lib.runtime import job_main


def run_cli(monkeypatch, run, *args):
    monkeypatch.setattr("sys.argv", ["job", "--run-id", "r1", *args])
    monkeypatch.setattr("jobs.lib.runtime._stop_spark", lambda: None)  # the tests' shared session stays up
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
