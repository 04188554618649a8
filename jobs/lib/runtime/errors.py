"""The exceptions the jobs raise on purpose. `jobs/lib/runtime.job_main` turns them into exit codes that the DAG
reads: 2 fails the task at once (retrying cannot fix bad data or a failed gate), 3 lets Airflow retry."""


class JobError(RuntimeError):
    """A job stopped on purpose (bad input, failed gate); the message says why. Exit code 2."""


class TransientJobError(JobError):
    """A job stopped on something that may pass (Redis unreachable); the message says what. Exit code 3."""
