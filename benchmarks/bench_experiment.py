"""Experiment benchmark: do the judgements hold up where the truth is known?

- A/B over real HTTP: the popularity baseline's lists (control) against ALS (treatment, half the users), both
  built from the training part of an ML-100K run; simulated people whose hidden tastes are their held-out
  ratings use the real service (gunicorn, Redis) for `--visits` visits each; ingest archives, the judging job
  (Spark) decides. The truth: ALS ranks held-out favourites higher, so it should be promoted.
- A/A over real HTTP once (the ALS lists in both arms), then `--aa-runs` A/A experiments on simulated
  exposure logs (tests/simulated_people.simulated_totals): the share that says "different" at 95%.
- Sample-ratio checks on `--srm-runs` simulated 90/10 splits: fair ones pass; ones that lose 10% of the
  treatment's users (a broken assignment) are caught.
- New movies over HTTP (slots_over_http): 10% of the movies unknown to ALS; lists without them against the same
  lists with 1, then 2, of their 10 places given to each person's new picks: CTR, and the share of the new
  movies that collect a first click.
Writes benchmarks/results/experiment.json and experiment.md.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import pandas as pd

from benchmarks.harness import GunicornService, RedisServer, wait_until
from benchmarks.report import done_with, scratch_folder, write
from benchmarks.simulated_people import (
    SimulatedPeople,
    held_out_run,
    hidden_tastes,
    simulated_totals,
)
from conf.settings import load_config
from jobs.lib.loop import experiment_control as experiments
from jobs.lib.loop import experiment_stats
from schemas import redis_keys as rk
from schemas.experiments import logged

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-experiment-token"


def judged_over_http(config, spark, url: str, redis_server, treatment_run: str, run_id: str, visits: int,
                     tastes: dict, seed: int) -> dict:
    """Start an experiment on `treatment_run` (published as a candidate), play the people, archive, judge."""
    from jobs import experiment, ingest, publish
    published = publish.run(config, treatment_run, spark=spark, candidate=True, share=0.5)
    time.sleep(config.serving.pointer_ttl + 0.5)  # the service sees the experiment
    people = SimulatedPeople(url, TOKEN, tastes, seed=seed)
    started = time.perf_counter()
    seen = people.run(sorted(tastes), visits)
    seconds = time.perf_counter() - started
    shown = seen.get("control_exposures", 0) + seen.get("treatment_exposures", 0)
    stream = redis_server.client()
    wait_until(lambda: logged(stream.xrange(rk.EXPOSURES)) >= shown, 30, what="the exposure log")
    ingest.run(config, run_id, spark=spark)
    report = experiment.run(config, run_id, spark=spark)
    experiments.end(stream, "aborted", published["experiment"]["id"], reason="benchmark")
    ctr = report["metrics"]["ctr_per_exposure"]
    return {"decision": report["decision"], "p_value": ctr["p_value"], "lift": ctr["lift"],
            "ctr": {"control": ctr["control"], "treatment": ctr["treatment"]},
            "ci": [ctr["ci_low"], ctr["ci_high"]], "users": sum(report["users"].values()),
            "users_per_arm": report["users"], "exposures": sum(report["exposures"].values()),
            "srm_passed": report["srm"]["passed"], "requests_per_s": round(shown / seconds),
            "reasons": report["reasons"], "new_clicked": people.new_clicked}


def new_movies_run(config, spark, shared, run_id: str, share: float = 0.1, seed: int = 7) -> set[int]:
    """A run whose ALS model never saw `share` of the movies (all their training ratings dropped, the model
    refitted): recommend gives them factors from their content and each person their new picks. Returns the
    movies held back."""
    import numpy as np
    from pyspark.sql import functions as F

    from jobs import recommend
    from jobs.lib.model.als import fit_implicit
    from jobs.lib.runtime.run_layout import run_paths

    paths = run_paths(config, run_id)
    shutil.copytree(shared.root, paths.root)
    train = spark.read.parquet(shared.split_train)
    movies = sorted(r.movie_id for r in train.select("movie_id").distinct().collect())
    held = set(np.random.default_rng(seed).choice(movies, int(len(movies) * share), replace=False).tolist())
    kept = train.where(~F.col("movie_id").isin(sorted(held)))
    shutil.rmtree(paths.clean_ratings)
    kept.write.parquet(paths.clean_ratings)
    fit_implicit(spark.read.parquet(paths.clean_ratings), config.als.implicit, config.als) \
        .write().overwrite().save(paths.model("prod", "implicit"))
    recommend.run(config, run_id, spark=spark)
    return held


def slots_over_http(config, spark, shared, redis_server, work: Path, visits: int, slots=(1, 2)) -> dict:
    """What giving m of k places to new movies costs and gains: 10% of the movies unknown to ALS; control, the
    lists without them (the same run, its new picks left out); treatment, the same lists with m places given to
    each person's new picks (serving.new_slots). The simulated people's hidden tastes are their held-out
    ratings and every rating of theirs of a movie ALS never saw: CTR per exposure, and the share of those movies
    that collect a first click."""
    from jobs import publish
    from jobs.lib.runtime.run_layout import run_paths

    held = new_movies_run(config, spark, shared, "with_new")
    shutil.copytree(run_paths(config, "with_new").root, run_paths(config, "without_new").root)
    shutil.rmtree(run_paths(config, "without_new").new_picks)
    ratings = pd.read_parquet(shared.split_train)
    tastes = hidden_tastes(pd.concat([pd.read_parquet(shared.split_test), ratings[ratings.movie_id.isin(held)]]))
    results = {"held_back_movies": len(held)}
    for m in slots:
        redis_server.client().flushdb()
        publish.run(config, "without_new", spark=spark)  # control, live
        settings = work / f"slots-{m}.yaml"
        settings.write_text(f"serving:\n  new_slots: {m}\n")
        (work / f"slots-service-{m}").mkdir()
        service = GunicornService(redis_server.url, work / f"slots-service-{m}", env={
            "RECO_EVENTS_TOKEN": TOKEN, "RECO_CONFIG": str(settings)}).start()
        try:
            judged = judged_over_http(config, spark, service.base_url, redis_server, "with_new", f"judge_slots_{m}",
                                      visits, tastes, seed=10 + m)
        finally:
            service.stop()
        clicked = judged.pop("new_clicked")
        judged["new_movies_with_a_click"] = {arm: round(len(movies & held) / len(held), 4)
                                             for arm, movies in clicked.items()}
        results[f"m={m}"] = judged
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=5, help="visits per simulated person (A/B and real A/A)")
    parser.add_argument("--aa-runs", type=int, default=500)
    parser.add_argument("--srm-runs", type=int, default=200)
    parser.add_argument("--users", type=int, default=5000, help="people per simulated A/A experiment")
    args = parser.parse_args()

    from jobs import publish
    from jobs.lib.runtime.run_layout import run_paths
    from jobs.lib.runtime.spark import spark_session
    from jobs.pipeline import run_pipeline

    work = scratch_folder("bench-experiment")
    redis_server = RedisServer(work / "redis").start()
    config = load_config(REPO / "conf" / "local.yaml", overrides={
        "data.root": str(work / "data"), "redis.url": redis_server.url, "events.token": TOKEN})
    spark = spark_session(config, "bench-experiment")
    run_pipeline(config, "shared", spark=spark)
    shared = run_paths(config, "shared")
    for run_id, model in (("popular_run", "popularity"), ("als_run", "als"), ("als_again", "als")):
        held_out_run(config, shared, run_id, model, spark)
    tastes = hidden_tastes(pd.read_parquet(shared.split_test))
    publish.run(config, "popular_run", spark=spark)  # control, live
    (work / "service").mkdir()
    service = GunicornService(redis_server.url, work / "service", env={"RECO_EVENTS_TOKEN": TOKEN}).start()
    try:
        ab = judged_over_http(config, spark, service.base_url, redis_server, "als_run", "judge_ab", args.visits,
                              tastes, seed=1)
        # A/A: the ALS lists go live, then the same lists again as the candidate.
        publish.run(config, "als_run", spark=spark)
        aa_http = judged_over_http(config, spark, service.base_url, redis_server, "als_again", "judge_aa",
                                   args.visits, tastes, seed=2)
    finally:
        service.stop()
    try:
        slots = slots_over_http(config, spark, shared, redis_server, work, args.visits)
    finally:
        spark.stop()
        redis_server.stop()
    for judged in (ab, aa_http):
        judged.pop("new_clicked")

    settings = config.experiments
    aa = [experiment_stats.judge(**simulated_totals(seed, args.users, 0.5), share=0.5, guardrails={},
                                 settings=settings) for seed in range(args.aa_runs)]
    false_positives = sum(v["metrics"]["ctr_per_exposure"]["p_value"] < 0.05 for v in aa)
    fair = [experiment_stats.judge(**simulated_totals(10_000 + s, 20_000, 0.1), share=0.1, guardrails={},
                                   settings=settings)["srm"]["passed"] for s in range(args.srm_runs)]
    skewed = [not experiment_stats.judge(**simulated_totals(20_000 + s, 20_000, 0.1, lose_treatment=0.1),
                                         share=0.1, guardrails={}, settings=settings)["srm"]["passed"]
              for s in range(args.srm_runs)]
    result = {
        "ab": ab,
        "aa": {"runs": args.aa_runs, "false_positives": false_positives, "rate": false_positives / args.aa_runs,
               "users_per_run": args.users, "srm_failures": sum(not v["srm"]["passed"] for v in aa),
               "over_http": aa_http},
        "srm": {"runs": args.srm_runs, "split": "90/10", "users_per_run": 20_000,
                "balanced_passed": sum(fair) / args.srm_runs, "skewed_detected": sum(skewed) / args.srm_runs,
                "skew": "10% of the treatment's users lost"},
        "new_slots": slots,
        "settings": {"visits": args.visits, "people": len(tastes), "alpha": settings.alpha,
                     "srm_alpha": settings.srm_alpha},
    }
    rows = [
        ("A/B over HTTP: ALS vs popularity", ab["decision"], f"{ab['lift']:+.1%}", f"{ab['p_value']:.2g}",
         f"{ab['users']:,} users, {ab['exposures']:,} exposures"),
        ("A/A over HTTP: ALS vs the same lists", aa_http["decision"], f"{aa_http['lift']:+.1%}",
         f"{aa_http['p_value']:.2g}", f"{aa_http['users']:,} users"),
        (f"A/A simulated x{args.aa_runs}", f"{false_positives} said different", f"{result['aa']['rate']:.1%}",
         "", f"{args.users:,} users each"),
        (f"SRM 90/10 fair x{args.srm_runs}", f"{result['srm']['balanced_passed']:.1%} passed", "", "", ""),
        (f"SRM 90/10 skewed x{args.srm_runs}", f"{result['srm']['skewed_detected']:.1%} caught", "", "", ""),
    ] + [(f"new movies given {m} of 10 places vs none ({slots['held_back_movies']} movies ALS never saw)",
          judged["decision"], f"{judged['lift']:+.1%}", f"{judged['p_value']:.2g}",
          f"CTR {judged['ctr']['control']:.4f} -> {judged['ctr']['treatment']:.4f}; "
          f"{judged['new_movies_with_a_click'].get('treatment', 0):.0%} of the new movies clicked at least once")
         for m, judged in ((key.split("=")[1], value) for key, value in slots.items() if key.startswith("m="))]
    notes = ("Targets: A/B promotes ALS with p < 0.01; A/A says different about 5% of the time at 95% (at most "
             "10%); the sample-ratio check passes fair 90/10 splits and catches the skewed ones. "
             "Command: make bench-experiment")
    write("experiment", result, rows, ("experiment", "decision", "lift / rate", "p-value", "size"), notes)
    done_with(work)


if __name__ == "__main__":
    main()
