"""Evaluation: the GUIDE protocol's metrics shared by evaluate, tune and the quality benchmark (`metrics`), the
quality gate (`gates`), the HTML evaluation report (`report`) and its figures (`charts`)."""
