"""validate: run the Great Expectations suites on a run's raw data; stop the run when any expectation fails.

Writes `validate/report.json` (every result), the suites' raw GX results and Data Docs HTML under the run's
`validate/` folder. On failure it exits 2 with one line per failed expectation.
"""
from __future__ import annotations

import logging
import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from conf.settings import Config  # noqa: E402
from jobs.common import (JobError, is_local, job_main, join, read_json, run_paths, spark_session,  # noqa: E402
                         utc_now, write_json)
from schemas.expectations import SUITE_NAMES, build_suites, describe  # noqa: E402
from schemas.movielens import DATASETS  # noqa: E402

log = logging.getLogger("reco.validate")


def validation_frames(ratings: DataFrame, movies: DataFrame) -> dict[str, DataFrame]:
    """The three frames the suites run on (see schemas/expectations.py)."""
    catalog = movies.where("movie_id IS NOT NULL").select("movie_id").distinct() \
        .withColumn("movie_in_catalog", F.lit(True))
    flagged = ratings.join(catalog, "movie_id", "left") \
        .withColumn("movie_in_catalog", F.coalesce("movie_in_catalog", F.lit(False)))
    genres = movies.select("movie_id", F.explode_outer("genres").alias("genre")).where("genre IS NOT NULL")
    return {"ratings": flagged, "movies": movies, "movie_genres": genres}


def run_suites(frames: dict[str, DataFrame], suites, docs_dir: str | None) -> list[dict]:
    """Validate each frame with its suite through a GX checkpoint; build Data Docs into docs_dir if given."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX logs its internals at INFO (e.g. a bare "[]" dump of the datasources); our report says what matters.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    actions = []
    if docs_dir:
        context.add_data_docs_site("run", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["run"]))
    source = context.data_sources.add_spark("run")
    results = []
    for name in SUITE_NAMES:
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add(suites[name])
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"validate_{name}", validation_definitions=[definition], actions=actions,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}))
        outcome = checkpoint.run(batch_parameters={"dataframe": frames[name]})
        for suite_result in outcome.run_results.values():
            results.append(suite_result.to_json_dict())
    return results


def summarize(results: list[dict]) -> tuple[list[dict], list[str]]:
    """Per-expectation rows for the report, and one readable line per failure."""
    rows, failures = [], []
    for suite_result in results:
        for item in suite_result["results"]:
            config = item["expectation_config"]
            result = item.get("result") or {}
            row = {
                "suite": suite_result["suite_name"],
                "expectation": describe(config["type"], config["kwargs"]),
                "success": item["success"],
                "unexpected_count": result.get("unexpected_count"),
                "element_count": result.get("element_count"),
                "observed_value": result.get("observed_value"),
                "examples": result.get("partial_unexpected_list"),
            }
            if item.get("exception_info", {}).get("raised_exception"):
                row["error"] = item["exception_info"]["exception_message"]
            rows.append(row)
            if not item["success"]:
                detail = (f"{row['unexpected_count']} of {row['element_count']} rows unexpected, "
                          f"e.g. {row['examples']}") if row["unexpected_count"] is not None \
                    else f"observed {row['observed_value']}"
                failures.append(f"[{row['suite']}] {row['expectation']}: {row.get('error') or detail}")
    return rows, failures


def run(config: Config, run_id: str, spark: SparkSession | None = None) -> dict:
    paths = run_paths(config, run_id)
    spec = DATASETS[read_json(paths.manifest)["dataset"]]
    spark = spark or spark_session(config, "validate")
    frames = validation_frames(spark.read.parquet(paths.raw_ratings), spark.read.parquet(paths.raw_movies))
    docs_dir = join(paths.validation, "data_docs") if is_local(paths.root) else None
    results = run_suites(frames, build_suites(spec, config.validation), docs_dir)
    rows, failures = summarize(results)
    report = {
        "run_id": run_id, "dataset": spec.name, "success": not failures, "failed": failures,
        "expectations": rows, "data_docs": join(docs_dir, "index.html") if docs_dir else None,
        "validated_at": utc_now(),
    }
    write_json(paths.validation_report, report)
    write_json(join(paths.validation, "gx_results.json"), results)
    if failures:
        raise JobError(f"{len(failures)} expectation(s) failed; report: {paths.validation_report}\n  "
                       + "\n  ".join(failures))
    log.info("all %d expectations passed", len(rows))
    return {"success": True, "expectations": len(rows), "report": paths.validation_report}


def main() -> None:
    job_main("validate", __doc__.splitlines()[0], run)


if __name__ == "__main__":
    main()
