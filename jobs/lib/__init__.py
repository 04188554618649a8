"""The library the jobs are built on, one folder per domain (each folder's __init__ lists its modules):

- `runtime`: the Spark session factory, the job command line, errors, storage, the run layout;
- `data`: download, layouts, validation (Great Expectations), cleaning, drift;
- `model`: splits, ALS, scoring (top-N, neighbours, popular lists), grid search;
- `evaluation`: metrics, the quality gate, the HTML report;
- `publication`: values and versions in Redis;
- `loop`: the event archive and experiments.

Jobs (`jobs/<name>.py`) are command lines and `run()` over these; no job imports another.
"""
