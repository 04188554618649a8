"""Contracts shared by the jobs and the service: data schemas, expectation suites, Redis layout, HTTP API."""
