"""MLflow: each batch run as an MLflow run (settings, dataset, metrics, the gate's decision, artifacts), each
published version as a version of one registered model, its aliases following Redis's pointer. Redis stays the
truth for serving; every call here is best effort (no retries, a short timeout) and whatever MLflow missed while
it was down is caught up by the next call (registry.sync_registry). docs/architecture.md: Tracking."""
