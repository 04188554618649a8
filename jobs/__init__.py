"""Spark batch jobs, one module each; `jobs.common` holds what they share."""
