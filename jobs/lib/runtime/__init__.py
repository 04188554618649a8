"""What every job shares: the Spark session factory (`spark`), the command line (`cli`), errors and their exit codes
(`errors`), files on local disk or an object store (`storage`), the run folder layout and ids (`run_layout`), and
the record of a whole DAG run for /metrics (`run_summary`)."""
