"""What the speed layer exports on --metrics-port (Prometheus)."""

from prometheus_client import Counter, Gauge, Histogram

FOLD_INS = Counter("reco_speed_fold_ins_total", "People whose fresh list the speed layer wrote")
EVENTS_READ = Counter("reco_speed_events_total", "Stream entries the speed layer folded in (once each)")
SET_ASIDE = Counter(
    "reco_speed_events_set_aside_total",
    "Entries that are not valid events: acknowledged and skipped, never retried",
    ["reason"],
)
DROPPED = Counter(
    "reco_speed_people_dropped_total",
    "People let go at speed.max_people (the least recently "
    "active): their answers fall back to the version's list until the next one",
)
ERRORS = Counter("reco_speed_errors_total", "Failures the speed layer survived", ["kind"])
LAG = Gauge("reco_speed_lag_entries", "Stream entries not yet delivered to the speed layer's group")
FRESHNESS = Histogram(
    "reco_speed_freshness_seconds",
    "From an event's acceptance to its person's fresh list",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
VERSION = Gauge("reco_speed_version_info", "The version the speed layer folds into", ["version"])
PEOPLE = Gauge("reco_speed_people", "People of this shard with events since the version")
