"""The one exception the jobs raise on purpose."""


class JobError(RuntimeError):
    """A job stopped on purpose (bad input, failed gate, unreachable Redis); the message says why. Exit code 2."""
