"""Spark batch jobs: one entry point per module (a command line and `run()`), built on the library in `jobs/lib/`."""
