"""The Great Expectations run over a run's raw tables: the frames the suites check (schemas/expectations.py),
the suites built from their definitions, one checkpoint per suite, Data Docs, and a readable line per failed
expectation."""
from __future__ import annotations

import logging
import os
import time

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from schemas.expectations import SUITE_NAMES, describe

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no phoning home from batch jobs

log = logging.getLogger("reco.validation")


def validation_frames(ratings: DataFrame, movies: DataFrame, events: DataFrame | None = None,
                      rating_values=(), content: dict[str, DataFrame] | None = None) -> dict[str, DataFrame]:
    """The frames the suites run on (see schemas/expectations.py); `events` only when the run has some, `tags` and
    `genome` (`content`) where the release ships them."""
    catalog = movies.where("movie_id IS NOT NULL").select("movie_id").distinct() \
        .withColumn("movie_in_catalog", F.lit(True))

    def in_catalog(frame: DataFrame) -> DataFrame:
        return frame.join(catalog, "movie_id", "left") \
            .withColumn("movie_in_catalog", F.coalesce("movie_in_catalog", F.lit(False)))

    genres = movies.select("movie_id", F.explode_outer("genres").alias("genre")).where("genre IS NOT NULL")
    frames = {"ratings": in_catalog(ratings), "movies": movies, "movie_genres": genres}
    if events is not None:
        on_scale = (F.col("type") != "rating") | F.col("rating").isin(list(rating_values))
        frames["events"] = in_catalog(events).withColumn("rating_on_scale", F.coalesce(on_scale, F.lit(False)))
    for kind, frame in (content or {}).items():
        frames[kind] = in_catalog(frame)
    return frames


def build_suites(definitions: dict[str, list[tuple[str, dict]]]) -> dict:
    """Great Expectations suites from their definitions (schemas/expectations.py suites)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    return {name: gx.ExpectationSuite(name=name, expectations=[getattr(gxe, kind)(**kwargs) for kind, kwargs in exp])
            for name, exp in definitions.items()}


def run_suites(frames: dict[str, DataFrame], suites, docs_dir: str | None) -> list[dict]:
    """Validate each frame with its suite through a GX checkpoint; build Data Docs into docs_dir if given."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX logs its internals at INFO (e.g. a bare "[]" dump of the datasources); our report says what matters.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    started = time.perf_counter()
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
    log.info("great expectations context ready in %.2f s", time.perf_counter() - started)
    results = []
    for name in (n for n in SUITE_NAMES if n in frames):
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
