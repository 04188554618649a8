"""Publication: a run's answers as Redis keys and values (`values`), and versions in Redis: write, verify, flip
the live pointer, retention, rollback and the smoke check (`versions`)."""
