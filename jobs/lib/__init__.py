"""The library the jobs are built on, one responsibility a module:

- `runtime`: the Spark session factory and the job CLI;  `errors`: `JobError` (exit 2), `TransientJobError` (3);
- `files`: small JSON/text files on local disk or an object store;  `runs`: the run folder layout and run ids;
- `sources`: MovieLens acquisition (verified download, local folders);  `parsing`: the layouts into raw tables;
- `validation`: the Great Expectations run;  `cleaning`: raw into clean tables;
- `splits`: evaluation split and cross-validation folds;  `als`: ALS settings into models (implicit, explicit);
- `ranking`: top-N scoring, neighbours and popular lists;  `evaluation`: the GUIDE's metrics and the
  evaluation steps shared by evaluate, tune and the quality benchmark;  `gates`: the quality gate;
- `report`: the HTML evaluation report;  `redis_values`: a run's answers as Redis keys and values;
- `publication`: writing versions into Redis, the pointer flip, retention, rollback and the smoke check;
- `tuning`: the helpers of tune's grid search (candidates, paired differences, the leaderboard).

Jobs (`jobs/<name>.py`) are command lines and `run()` over these; no job imports another.
"""
