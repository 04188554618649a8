"""The loop: the event and exposure streams archived to Parquet (`event_archive`), experiments started, judged and
ended (`experiment_control`), the evidence per user in Spark (`experiment_evidence`), its statistics
(`experiment_stats`) and the HTML report (`experiment_report`)."""
