"""Serving benchmark: the lookup service under gunicorn (production settings) against its floors, measured in
one run so the ratios hold on a noisy machine.

- framework floor: the constant-reply endpoint /healthz on the same server (wrk, max throughput);
- the service: random known users of the published ML-100K run, max throughput, then p50/p99 at about half
  of that rate (wrk's per-connection delay() paces the load);
- lookups against /healthz and against the same service reading each person's keys from Redis on every request
  (serving.people_cache_mb 0), in alternating rounds, as median ratios (the headline ratio_to_floor); beside them
  the lookup's own floor, a bench-only route that parses a lookup's URL and answers a constant
  (benchmarks/floors_app.py), which shows how much of the gap to /healthz is the lookup's reads and answer;
- lookups of people with a fold-in (a list as the speed layer writes one, for every person) against /healthz, in
  alternating rounds, as the median ratio;
- the same with an experiment running (a second version as the candidate for half the users, every answer's
  exposure logged), in alternating rounds without and with, as median ratios;
- the same with filters (genres, years, exclusions, diversity: a random mix, many answers topped up from the
  popular lists), in alternating rounds unfiltered and filtered at the same pace, as the median p99 ratio;
- the same through the front people reach (nginx, serving/front.py), in alternating rounds direct and through
  it, as median ratios;
- store floor: redis-benchmark GET (400-byte values, 8 clients, unpipelined);
- publication: keys/s of jobs.lib.publication.versions.write_files (the publish job's writer threads, pipelined MSETs)
  against redis-benchmark SET with pipelining;
- event intake (POST /v1/events with the token): single-event requests at max rate against two framework
  floors, in alternating rounds (median ratios): /healthz, and the intake's own floor, the same POST (token,
  body, JSON parse, 202) to a bench-only endpoint that stores nothing (benchmarks/floors_app.py; the
  server runs that app, which is the service's plus the two floor routes); p50/p99 at about half load; 100-event
  batches in events/s against redis-benchmark XADD (unpipelined, and pipelined by 100, the commands of one
  batch's script);
- a worker's full garbage collection with its near cache full, against the same cache holding each item's
  `because` as a nested dict (benchmarks/collector_pause.py).
Writes benchmarks/results/serving.json and serving.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import yaml

from benchmarks.harness import GunicornService, RedisServer, free_port
from benchmarks.report import done_with, scratch_folder, write
from conf.settings import RedisSettings, load_config
from jobs.lib.loop import experiment_control as experiments
from schemas import items
from schemas import redis_keys as rk
from schemas.events import to_stream_fields
from schemas.experiments import logged
from serving import front

REPO = Path(__file__).resolve().parent.parent
# Pauses delay_ms (WRK_DELAY_MS) after each answer; no braces: EVENTS_LUA is str.format-ted.
PACED = """
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
-- wrk takes whole milliseconds: round up or down at random so that the mean pause is delay_ms
delay = function()
  local whole = math.floor(delay_ms)
  if math.random() < delay_ms - whole then whole = whole + 1 end
  return whole
end
"""
USERS_LUA = """
math.randomseed(42)
request = function()
  return wrk.format("GET", "/v1/users/" .. math.random(1, {n_users}) .. "/recommendations?k=10")
end
""" + PACED
# The lookup's floor (benchmarks/floors_app.py): the same URLs under a bench-only route.
LOOKUP_FLOOR_LUA = USERS_LUA.replace("/v1/users/", "/bench/lookup-floor/")
HEALTHZ_LUA = """
math.randomseed(42)
request = function()
  return wrk.format("GET", "/healthz?user=" .. math.random(1, {n_users}))
end
""" + PACED
# Random known users with a random filter: rare genres (most answers are topped up from the popular lists),
# several genres, years, exclusions and diversity.
FILTERED_LUA = """
math.randomseed(43)
local filters = {
  "genre=Western", "genre=Documentary", "genre=Film-Noir,Western&year_min=1930&year_max=1969",
  "genre=Fantasy&diversity=0.5", "year_min=1990&year_max=1994", "genre=Comedy,Romance&exclude=50,100,181",
  "diversity=0.7", "genre=Horror&year_max=1980"}
request = function()
  return wrk.format("GET", "/v1/users/" .. math.random(1, {n_users}) .. "/recommendations?k=10&"
                    .. filters[math.random(1, #filters)])
end
""" + PACED
# One click per request, or batches of {batch} events (half ratings, half clicks) of random users and movies.
EVENTS_LUA = """
math.randomseed(7)
local batch = {batch}
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local events = {{}}
  for i = 1, batch do
    local user, movie = math.random(1, 50000), math.random(1, {n_movies})
    if batch > 1 and i % 2 == 0 then
      events[i] = string.format('{{"user_id":%d,"movie_id":%d,"type":"rating","rating":%d}}', user, movie,
                                math.random(1, 5))
    else
      events[i] = string.format('{{"user_id":%d,"movie_id":%d,"type":"click"}}', user, movie)
    end
  end
  return wrk.format(nil, "{path}", nil, '{{"events":[' .. table.concat(events, ",") .. ']}}')
end
""" + PACED
BENCH_TOKEN = "bench-events-token"
CLICK = {"user_id": 4242, "movie_id": 50, "type": "click", "rating": None, "ts": 1_700_000_000, "request_id": None}


def wrk(url: str, seconds: int, connections: int, script: str | None = None, delay_ms: float = 0.0) -> dict:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=seconds + 60,
                         env={**os.environ, "WRK_DELAY_MS": str(delay_ms)}).stdout

    def ms(label):
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50%"),
            "p99_ms": ms("99%"), "non_2xx": int(errors.group(1)) if errors else 0}


def half_load_delay(url: str, script: str, max_rps: float, connections: int = 8) -> float:
    """The pause (ms) after each answer at which `connections` connections send about half of `max_rps`. A
    connection's cycle is the pause plus the answer's latency, which is only known under that load: two short
    runs correct the pause (subtracting the latency at full load instead gave about 85% of the maximum)."""
    cycle_ms = connections / (max_rps / 2) * 1000
    delay_ms = cycle_ms / 2
    for _ in range(2):
        measured = wrk(url, 2, connections, script, delay_ms)
        delay_ms = max(0.0, delay_ms + cycle_ms - connections / measured["rps"] * 1000)
    return delay_ms


def redis_benchmark(port: int, test: str, pipeline: int, requests_n: int) -> float:
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", test, "-n", str(requests_n),
                          "-c", "8", "-d", "400", "-P", str(pipeline), "-q", "-r", "100000"],
                         capture_output=True, text=True, timeout=300).stdout
    return float(re.findall(r"([\d.]+) requests per second", out)[-1])


def redis_xadd(port: int, pipeline: int, requests_n: int) -> float:
    """XADD of an event exactly as the intake writes it, 8 clients."""
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(requests_n), "-c", "8",
                          "-P", str(pipeline), "-q", "XADD", "reco:bench:events", "*",
                          *(k for kv in to_stream_fields(CLICK).items() for k in (kv[0], kv[1].decode()))],
                         capture_output=True, text=True, timeout=300).stdout
    return float(re.findall(r"([\d.]+) requests per second", out)[-1])


def prepare_run(config, spark) -> str:
    """A published-size ML-100K run (fast ALS: the model's quality does not matter here)."""
    from jobs.pipeline import run_pipeline
    run_pipeline(config, "bench_serving", spark=spark)
    return "bench_serving"


def publication_throughput(spark, url: str, keys: int, folder: Path) -> float:
    """keys/s of the publisher's write path (jobs.lib.publication.versions.write_files) on `keys` synthetic 400-byte
    values in Parquet files written like the publish job's (FILE_OPTIONS), the best of three."""
    from pyspark.sql import functions as F

    from jobs.lib.publication.versions import FILE_OPTIONS, write_files
    spark.range(keys, numPartitions=2).select(
        F.concat(F.lit("user:"), F.col("id").cast("string")).alias("suffix"),
        F.repeat(F.lit("x"), 400).alias("value")).write.options(**FILE_OPTIONS).parquet(str(folder))
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        written = write_files(str(folder), RedisSettings(url=url), rk.version_prefix("bench"))
        best = max(best, written / (time.perf_counter() - started))
    return best


def write_fold_ins(client, n_users: int) -> None:
    """A fold-in list for each person against the live version, as the speed layer writes one (schemas/items.py,
    its header naming the version): their published list in reverse."""
    version = client.get(rk.LIVE).decode()
    published = client.mget([rk.key(version, "user", user) for user in range(1, n_users + 1)])
    with client.pipeline(transaction=False) as pipe:
        for user, raw in enumerate(published, start=1):
            if raw is not None:
                listed = items.unpack(raw)
                pipe.set(rk.fresh(user), items.pack(
                    listed.movie_ids[::-1], listed.scores[::-1], listed.because[::-1] if listed.because else None,
                    {"version": version, "events": 1, "updated_at": time.time()}))
        pipe.execute()


def collector_pause(nested_because: bool) -> dict:
    """A worker's full garbage collection with its near cache full, in a fresh interpreter
    (benchmarks/collector_pause.py)."""
    args = [sys.executable, "-m", "benchmarks.collector_pause"] + (["--nested-because"] if nested_because else [])
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk measurement")
    parser.add_argument("--publish-keys", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds without and with an experiment")
    parser.add_argument("--lookup-rounds", type=int, default=5,
                        help="rounds of lookups against /healthz (the headline ratio: a round's spread is about 0.05)")
    parser.add_argument("--round-seconds", type=int, default=5)
    args = parser.parse_args()

    from jobs.lib.runtime.spark import spark_session
    from jobs.publish import run as publish
    work = scratch_folder("bench-serving")
    redis_server = RedisServer(work / "redis").start()
    overrides = {"data.root": str(work / "data"), "redis.url": redis_server.url,
                 "als.implicit.rank": 32, "als.implicit.max_iter": 5, "als.explicit.max_iter": 5}
    config = load_config(REPO / "conf" / "local.yaml", overrides=overrides)
    spark = spark_session(config, "bench-serving")
    run_id = prepare_run(config, spark)
    published = publish(config, run_id, spark=spark)
    n_users = published["counts"]["user"]
    publish_kps = publication_throughput(spark, redis_server.url, args.publish_keys, work / "publish-values")
    spark.stop()
    redis_server.client().flushdb()
    publish(config, run_id)  # fresh session inside; the benchmark keys are gone
    # A second version of the same run, registered as a candidate; its experiment starts later, on cue.
    candidate = publish(config, run_id, candidate=True, share=0.5)
    experiments.end(redis_server.client(), "aborted", candidate["experiment"]["id"], reason="benchmark set-up")

    script, filtered_script = work / "users.lua", work / "filtered.lua"
    script.write_text(USERS_LUA.replace("{n_users}", str(n_users)))
    # The same floor driven like the lookups (a Lua call per request picking a random id): wrk shares the 2 CPUs,
    # so a script that costs the load generator more also takes from the server.
    healthz_script = work / "healthz.lua"
    healthz_script.write_text(HEALTHZ_LUA.replace("{n_users}", str(n_users)))
    lookup_floor_script = work / "lookup-floor.lua"
    lookup_floor_script.write_text(LOOKUP_FLOOR_LUA.replace("{n_users}", str(n_users)))
    filtered_script.write_text(FILTERED_LUA.replace("{n_users}", str(n_users)))
    n_movies = published["counts"]["movie"]
    single, batched, posted = work / "events1.lua", work / "events100.lua", work / "intake-floor.lua"
    for path, batch, url_path in ((single, 1, "/v1/events"), (batched, 100, "/v1/events"),
                                  (posted, 1, "/bench/intake-floor")):
        path.write_text(EVENTS_LUA.format(batch=batch, token=BENCH_TOKEN, n_movies=n_movies, path=url_path))
    # The backlog limit and the caps per minute would refuse a benchmark's millions of events: lifted here.
    service_config = work / "service.yaml"
    service_config.write_text(yaml.safe_dump({"events": {"backlog": 10**9, "max_per_minute": 10**9,
                                                         "max_per_user_per_minute": 10**9}}))
    # The same service reading each person's keys from Redis on every request, for the rounds below.
    reading_config = work / "reading.yaml"
    reading_config.write_text(yaml.safe_dump({"serving": {"people_cache_mb": 0}}))
    (work / "service").mkdir()
    (work / "reading").mkdir()
    server = GunicornService(redis_server.url, work / "service", env={
        "RECO_EVENTS_TOKEN": BENCH_TOKEN, "RECO_CONFIG": str(service_config)},
        app="benchmarks.floors_app:app").start()  # ready at /readyz
    base = server.base_url
    try:
        wrk(base, 3, 8, str(script))  # warm-up: connections, caches
        floor = wrk(f"{base}/healthz", args.seconds, 8)
        service = wrk(base, args.seconds, 8, str(script))
        # About half of the maximum rate: 8 connections, each waiting `delay` between requests.
        delay_ms = half_load_delay(base, str(script), service["rps"])
        half = wrk(base, args.seconds, 8, str(script), delay_ms)
        # Lookups against /healthz and against the service that reads each person from Redis every time
        # (serving/people.py off), alternating rounds: one 10-second pair moved the ratio by 0.1 between runs.
        reading = GunicornService(redis_server.url, work / "reading", env={"RECO_CONFIG": str(reading_config)}).start()
        try:
            wrk(reading.base_url, 2, 8, str(script))  # warm-up
            lookup_rounds = []
            for i in range(args.lookup_rounds):
                # Lookups next to /healthz and to the reading service whichever way a round runs.
                measure = {"healthz": lambda: wrk(f"{base}/healthz", args.round_seconds, 8),
                           "lookups": lambda: wrk(base, args.round_seconds, 8, str(script)),
                           "reading": lambda: wrk(reading.base_url, args.round_seconds, 8, str(script)),
                           "healthz_scripted": lambda: wrk(base, args.round_seconds, 8, str(healthz_script)),
                           "lookup_floor": lambda: wrk(base, args.round_seconds, 8, str(lookup_floor_script))}
                order = list(measure) if i % 2 == 0 else list(reversed(measure))
                lookup_rounds.append({name: measure[name]() for name in order})
        finally:
            reading.stop()
        # Lookups of people with a fold-in against /healthz, alternating rounds; then the fold-ins go again.
        write_fold_ins(redis_server.client(), n_users)
        wrk(base, 2, 8, str(script))  # warm-up: each person's fold-in into the copies
        fold_in_rounds = []
        for i in range(args.rounds):
            measure = {"healthz": lambda: wrk(f"{base}/healthz", args.round_seconds, 8),
                       "fold_in": lambda: wrk(base, args.round_seconds, 8, str(script))}
            order = list(measure) if i % 2 == 0 else list(reversed(measure))
            fold_in_rounds.append({name: measure[name]() for name in order})
        redis_server.client().delete(*(rk.fresh(user) for user in range(1, n_users + 1)))
        # With and without an experiment, alternating rounds (the machine's drift falls on both alike).
        rounds, exposures_logged = [], 0
        for _ in range(args.rounds):
            without = wrk(base, args.round_seconds, 8, str(script))
            without_half = wrk(base, args.round_seconds, 8, str(script), delay_ms)
            running = experiments.start(redis_server.client(), candidate["version"], 0.5)
            time.sleep(config.serving.pointer_ttl + 0.5)  # every worker has seen it
            wrk(base, 1, 8, str(script))  # warm-up: the candidate's values into the near cache
            within = wrk(base, args.round_seconds, 8, str(script))
            within_half = wrk(base, args.round_seconds, 8, str(script), delay_ms)
            time.sleep(config.experiments.exposure_flush_s * 2)
            exposures_logged += logged(redis_server.client().xrange(rk.EXPOSURES))
            redis_server.client().delete(rk.EXPOSURES)
            experiments.end(redis_server.client(), "aborted", running["id"], reason="benchmark")
            time.sleep(config.serving.pointer_ttl + 0.5)
            rounds.append({"without": without, "without_half": without_half, "with": within,
                           "with_half": within_half})
        # Unfiltered and filtered at the same pace (the unfiltered half load), alternating rounds.
        wrk(base, 2, 8, str(filtered_script))  # warm-up: the popular lists and `seen` lists into the near cache
        filter_rounds = []
        for i in range(args.rounds):
            order = [("plain", script), ("filtered", filtered_script)]
            filter_rounds.append({name: wrk(base, args.round_seconds, 8, str(lua), delay_ms)
                                  for name, lua in (order if i % 2 == 0 else reversed(order))})
        filtered_max = wrk(base, args.round_seconds, 8, str(filtered_script))
        # Direct and through nginx, alternating rounds: max throughput and the half-load latency.
        front_dir, front_port = work / "front", free_port()
        # What the front costs, not its per-address limit: wrk is one address.
        front.start(front_dir, f"127.0.0.1:{front_port}", base.removeprefix("http://"), rate_per_s=10**6)
        fronted = f"http://127.0.0.1:{front_port}"
        front_rounds = []
        try:
            wrk(fronted, 2, 8, str(script))  # warm-up
            for i in range(args.rounds):
                order = [("direct", base), ("front", fronted)]
                measured = {}
                for name, url in (order if i % 2 == 0 else reversed(order)):
                    measured[name] = wrk(url, args.round_seconds, 8, str(script))
                    measured[f"{name}_half"] = wrk(url, args.round_seconds, 8, str(script), delay_ms)
                front_rounds.append(measured)
        finally:
            front.stop(front_dir)
        store_get = redis_benchmark(redis_server.port, "get", 1, 200_000)
        store_set_pipelined = redis_benchmark(redis_server.port, "set", 16, 1_000_000)

        events_url = f"{base}/v1/events"
        wrk(events_url, 3, 8, str(single))  # warm-up
        # Single events against both floors in alternating rounds (one 10-second run of each moved 5-10%
        # between runs, enough to swap the two floors' order): the medians of the per-round ratios.
        intake_rounds = []
        for i in range(args.rounds):
            measure = {"intake": lambda: wrk(events_url, args.round_seconds, 8, str(single)),
                       "post_floor": lambda: wrk(f"{base}/bench/intake-floor", args.round_seconds, 8, str(posted)),
                       "healthz": lambda: wrk(f"{base}/healthz", args.round_seconds, 8)}
            order = list(measure) if i % 2 == 0 else list(reversed(measure))
            intake_rounds.append({name: measure[name]() for name in order})
        intake_one = {"rps": median(r["intake"]["rps"] for r in intake_rounds),
                      "p99_ms": median(r["intake"]["p99_ms"] for r in intake_rounds),
                      "non_2xx": sum(r["intake"]["non_2xx"] for r in intake_rounds)}
        intake_floor = {"rps": median(r["post_floor"]["rps"] for r in intake_rounds),
                        "p99_ms": median(r["post_floor"]["p99_ms"] for r in intake_rounds),
                        "non_2xx": sum(r["post_floor"]["non_2xx"] for r in intake_rounds)}
        intake_healthz_rps = median(r["healthz"]["rps"] for r in intake_rounds)
        delay_ms = half_load_delay(events_url, str(single), intake_one["rps"])
        intake_half = wrk(events_url, args.seconds, 8, str(single), delay_ms)
        intake_batch = wrk(events_url, args.seconds, 8, str(batched))
        accepted = redis_server.client().xlen(rk.EVENTS)
        redis_server.client().delete(rk.EVENTS)
        xadd = redis_xadd(redis_server.port, 1, 200_000)
        xadd_pipelined = redis_xadd(redis_server.port, 100, 2_000_000)
    finally:
        server.stop()
        redis_server.stop()

    result = {
        "rps": round(service["rps"]), "p50_ms": half["p50_ms"], "p99_ms": half["p99_ms"],
        "half_load_rps": round(half["rps"]), "half_load_share": round(half["rps"] / service["rps"], 3),
        "max_load_p99_ms": service["p99_ms"],
        "floor_rps": round(floor["rps"]),
        "ratio_to_floor": round(median(r["lookups"]["rps"] / r["healthz"]["rps"] for r in lookup_rounds), 3),
        "lookups": {
            "rounds": len(lookup_rounds),
            "rps": round(median(r["lookups"]["rps"] for r in lookup_rounds)),
            "rps_reading_every_time": round(median(r["reading"]["rps"] for r in lookup_rounds)),
            "floor_rps": round(median(r["healthz"]["rps"] for r in lookup_rounds)),
            "scripted_floor_rps": round(median(r["healthz_scripted"]["rps"] for r in lookup_rounds)),
            "ratio_to_scripted_floor": round(median(r["lookups"]["rps"] / r["healthz_scripted"]["rps"]
                                                    for r in lookup_rounds), 3),
            "lookup_floor_rps": round(median(r["lookup_floor"]["rps"] for r in lookup_rounds)),
            "lookup_floor_ratio_to_floor": round(median(r["lookup_floor"]["rps"] / r["healthz"]["rps"]
                                                        for r in lookup_rounds), 3),
            "reading_every_time_ratio_to_floor": round(median(r["reading"]["rps"] / r["healthz"]["rps"]
                                                              for r in lookup_rounds), 3),
            "ratio_to_reading_every_time": round(median(r["lookups"]["rps"] / r["reading"]["rps"]
                                                        for r in lookup_rounds), 3),
            "per_round": [{name: round(m["rps"]) for name, m in r.items()} for r in lookup_rounds],
            "non_2xx": sum(r[k]["non_2xx"] for r in lookup_rounds for k in r)},
        "fold_in": {
            "rounds": len(fold_in_rounds),
            "rps": round(median(r["fold_in"]["rps"] for r in fold_in_rounds)),
            "floor_rps": round(median(r["healthz"]["rps"] for r in fold_in_rounds)),
            "ratio_to_floor": round(median(r["fold_in"]["rps"] / r["healthz"]["rps"] for r in fold_in_rounds), 3),
            "non_2xx": sum(r[k]["non_2xx"] for r in fold_in_rounds for k in r)},
        "redis_get_rps": round(store_get), "ratio_to_redis_get": round(service["rps"] / store_get, 3),
        "publish_keys_per_s": round(publish_kps), "redis_set_pipelined_rps": round(store_set_pipelined),
        "publish_ratio_to_redis": round(publish_kps / store_set_pipelined, 3),
        "non_2xx": service["non_2xx"] + half["non_2xx"],
        "experiment": {
            "rounds": len(rounds),
            "rps": round(median(r["with"]["rps"] for r in rounds)),
            "rps_without": round(median(r["without"]["rps"] for r in rounds)),
            "ratio_to_no_experiment": round(median(r["with"]["rps"] / r["without"]["rps"] for r in rounds), 3),
            "half_load_p99_ms": median(r["with_half"]["p99_ms"] for r in rounds),
            "half_load_p99_ms_without": median(r["without_half"]["p99_ms"] for r in rounds),
            "p99_ratio_to_no_experiment": round(median(r["with_half"]["p99_ms"] / r["without_half"]["p99_ms"]
                                                       for r in rounds), 3),
            "half_load_p50_ms": median(r["with_half"]["p50_ms"] for r in rounds),
            "half_load_p50_ms_without": median(r["without_half"]["p50_ms"] for r in rounds),
            "exposures_logged": exposures_logged,
            "non_2xx": sum(r[k]["non_2xx"] for r in rounds for k in r)},
        "filters": {
            "rounds": len(filter_rounds),
            "half_load_p99_ms": median(r["filtered"]["p99_ms"] for r in filter_rounds),
            "half_load_p99_ms_plain": median(r["plain"]["p99_ms"] for r in filter_rounds),
            "p99_ratio_to_plain": round(median(r["filtered"]["p99_ms"] / r["plain"]["p99_ms"]
                                               for r in filter_rounds), 3),
            "half_load_p50_ms": median(r["filtered"]["p50_ms"] for r in filter_rounds),
            "rps": round(filtered_max["rps"]), "ratio_to_plain_rps": round(filtered_max["rps"] / service["rps"], 3),
            "non_2xx": sum(r[k]["non_2xx"] for r in filter_rounds for k in r) + filtered_max["non_2xx"]},
        "front": {
            "rounds": len(front_rounds),
            "rps": round(median(r["front"]["rps"] for r in front_rounds)),
            "rps_direct": round(median(r["direct"]["rps"] for r in front_rounds)),
            "ratio_to_direct": round(median(r["front"]["rps"] / r["direct"]["rps"] for r in front_rounds), 3),
            "half_load_p99_ms": median(r["front_half"]["p99_ms"] for r in front_rounds),
            "half_load_p99_ms_direct": median(r["direct_half"]["p99_ms"] for r in front_rounds),
            "p99_ratio_to_direct": round(median(r["front_half"]["p99_ms"] / r["direct_half"]["p99_ms"]
                                                for r in front_rounds), 3),
            "half_load_p50_ms": median(r["front_half"]["p50_ms"] for r in front_rounds),
            "non_2xx": sum(r[k]["non_2xx"] for r in front_rounds for k in r)},
        "intake": {
            "rounds": len(intake_rounds),
            "single_rps": round(intake_one["rps"]),
            "single_ratio_to_floor": round(median(r["intake"]["rps"] / r["healthz"]["rps"] for r in intake_rounds), 3),
            "floor_rps": round(intake_healthz_rps), "intake_floor_rps": round(intake_floor["rps"]),
            "single_ratio_to_intake_floor": round(median(r["intake"]["rps"] / r["post_floor"]["rps"]
                                                         for r in intake_rounds), 3),
            "per_round": [{name: round(m["rps"]) for name, m in r.items()} for r in intake_rounds],
            "single_p50_ms_half_load": intake_half["p50_ms"], "single_p99_ms_half_load": intake_half["p99_ms"],
            "batch100_events_per_s": round(intake_batch["rps"] * 100),
            "batch100_p99_ms": intake_batch["p99_ms"],
            "redis_xadd_rps": round(xadd), "redis_xadd_pipelined_rps": round(xadd_pipelined),
            "batch_ratio_to_xadd_pipelined": round(intake_batch["rps"] * 100 / xadd_pipelined, 3),
            "batch_ratio_to_xadd": round(intake_batch["rps"] * 100 / xadd, 3),
            "events_in_stream": accepted,
            "non_2xx": intake_one["non_2xx"] + intake_half["non_2xx"] + intake_batch["non_2xx"]
            + intake_floor["non_2xx"],
        },
        "settings": {"gunicorn": "2 sync workers (serving/gunicorn.conf.py)", "wrk": "2 threads, 8 connections",
                     "users": n_users, "publish_keys": args.publish_keys},
    }
    rows = [
        ("service, random known users (max)", f"{result['rps']:,}", "", f"{service['p99_ms']:.2f}"),
        ("service at ~half load", f"{result['half_load_rps']:,}", f"{half['p50_ms']:.2f}", f"{half['p99_ms']:.2f}"),
        ("lookup rounds: lookups (max, median)", f"{result['lookups']['rps']:,}", "", ""),
        ("lookup rounds: each person read from Redis every time (max, median)",
         f"{result['lookups']['rps_reading_every_time']:,}", "", ""),
        ("lookup rounds: /healthz (median)", f"{result['lookups']['floor_rps']:,}", "", ""),
        ("lookup rounds: /healthz driven by a script like the lookups' (median)",
         f"{result['lookups']['scripted_floor_rps']:,}", "", ""),
        ("lookup rounds: the lookup's floor, its URL parsed and a constant answer (median)",
         f"{result['lookups']['lookup_floor_rps']:,}", "", ""),
        ("fold-in rounds: people with a fold-in (max, median)", f"{result['fold_in']['rps']:,}", "", ""),
        ("fold-in rounds: /healthz (median)", f"{result['fold_in']['floor_rps']:,}", "", ""),
        ("experiment rounds: without (max, median)", f"{result['experiment']['rps_without']:,}", "", ""),
        ("experiment rounds: with an experiment running (max, median)", f"{result['experiment']['rps']:,}", "", ""),
        ("experiment rounds: without, ~half load (median)", "",
         f"{result['experiment']['half_load_p50_ms_without']:.2f}",
         f"{result['experiment']['half_load_p99_ms_without']:.2f}"),
        ("experiment rounds: with, ~half load (median)", "", f"{result['experiment']['half_load_p50_ms']:.2f}",
         f"{result['experiment']['half_load_p99_ms']:.2f}"),
        ("filtered requests (max)", f"{result['filters']['rps']:,}", "", ""),
        ("filter rounds: unfiltered, ~half load (median)", "", "",
         f"{result['filters']['half_load_p99_ms_plain']:.2f}"),
        ("filter rounds: filtered, same pace (median)", "", f"{result['filters']['half_load_p50_ms']:.2f}",
         f"{result['filters']['half_load_p99_ms']:.2f}"),
        ("front rounds: direct to gunicorn (max, median)", f"{result['front']['rps_direct']:,}", "", ""),
        ("front rounds: through nginx (max, median)", f"{result['front']['rps']:,}", "", ""),
        ("front rounds: direct, ~half load (median)", "", "", f"{result['front']['half_load_p99_ms_direct']:.2f}"),
        ("front rounds: through nginx, ~half load (median)", "", f"{result['front']['half_load_p50_ms']:.2f}",
         f"{result['front']['half_load_p99_ms']:.2f}"),
        ("framework floor: /healthz, same server", f"{result['floor_rps']:,}", "", f"{floor['p99_ms']:.2f}"),
        ("store floor: redis-benchmark GET", f"{result['redis_get_rps']:,}", "", ""),
        ("publication, keys/s (Parquet files, Arrow-packed MSETs)", f"{result['publish_keys_per_s']:,}", "", ""),
        ("redis-benchmark SET -P 16", f"{result['redis_set_pipelined_rps']:,}", "", ""),
        ("intake, 1 event per request (max, median of rounds)", f"{round(intake_one['rps']):,}", "",
         f"{intake_one['p99_ms']:.2f}"),
        ("intake rounds: the same POST, nothing checked or stored (median)", f"{round(intake_floor['rps']):,}",
         "", f"{intake_floor['p99_ms']:.2f}"),
        ("intake rounds: /healthz (median)", f"{round(intake_healthz_rps):,}", "", ""),
        ("intake, 1 event per request at ~half load", f"{round(intake_half['rps']):,}",
         f"{intake_half['p50_ms']:.2f}", f"{intake_half['p99_ms']:.2f}"),
        ("intake, 100-event batches: events/s", f"{round(intake_batch['rps'] * 100):,}", "",
         f"{intake_batch['p99_ms']:.2f}"),
        ("redis-benchmark XADD (events/s)", f"{round(xadd):,}", "", ""),
        ("redis-benchmark XADD -P 100 (events/s)", f"{round(xadd_pipelined):,}", "", ""),
    ]
    result["collector"] = {"items": collector_pause(False), "nested_because": collector_pause(True)}
    pause, before = result["collector"]["items"], result["collector"]["nested_because"]
    notes = (f"ratio_to_floor {result['ratio_to_floor']} (target >= 0.8; median of the lookup rounds; reading each "
             f"person from Redis every time: {result['lookups']['reading_every_time_ratio_to_floor']}; against "
             f"/healthz driven by the same kind of script: {result['lookups']['ratio_to_scripted_floor']}; "
             f"the lookup's floor, its URL parsed: {result['lookups']['lookup_floor_ratio_to_floor']}; people with a "
             f"fold-in: {result['fold_in']['ratio_to_floor']}); "
             f"publish_ratio_to_redis "
             f"{result['publish_ratio_to_redis']} (target >= 0.5); p99 at half load {half['p99_ms']:.2f} ms "
             f"(target <= 5 ms); with an experiment running: {result['experiment']['ratio_to_no_experiment']} of "
             f"the throughput and {result['experiment']['p99_ratio_to_no_experiment']} of the half-load p99 "
             f"without one (target: within 10%); filtered answers: {result['filters']['p99_ratio_to_plain']} of the "
             f"unfiltered half-load p99 (target <= 1.2); through nginx: {result['front']['ratio_to_direct']} of the "
             "direct "
             f"throughput and {result['front']['p99_ratio_to_direct']} of its half-load p99; intake: single events "
             f"{result['intake']['single_ratio_to_floor']} of the framework "
             f"floor (target >= 0.7; {result['intake']['single_ratio_to_intake_floor']} of the same POST storing "
             f"nothing), 100-event batches {result['intake']['batch_ratio_to_xadd_pipelined']} of "
             f"pipelined XADD and {result['intake']['batch_ratio_to_xadd']} of unpipelined XADD in events/s "
             f"(target >= 0.3); a worker's full garbage collection with its near cache full ({pause['cache_mb']:g} MB, "
             f"{pause['lists']:,} lists of 50 at the seeds' shape): {pause['pause_ms']} ms, {before['pause_ms']} ms "
             f"with each `because` a nested dict ({before['lists']:,} lists). Command: make bench-serving")
    write("serving", result, rows, ("what", "req/s", "p50 ms", "p99 ms"), notes)
    done_with(work)


if __name__ == "__main__":
    main()
