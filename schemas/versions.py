"""A published version's metadata (`reco:v:<version>:meta`): written last by the publisher, read by the service
(/v1/version, the intake's rating scale, /metrics), the speed layer (what to fold into) and the next publication
(whether live was built from newer data). One record, one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import orjson


@dataclass(frozen=True)
class VersionMeta:
    version: str
    run_id: str
    dataset: str | None = None
    k: int = 10  # the list length the metrics were computed at
    published_at: str | None = None
    trained_at: str | None = None
    data_as_of: str | None = None  # the DAG run's logical date: a run of older data never replaces it
    events_high_water: str | None = None  # the last event it learnt from (stream id), or None
    metrics: dict = field(default_factory=dict)  # headline offline metrics
    counts: dict = field(default_factory=dict)  # keys per kind
    top_n: int = 50  # a person's list length
    fold_in: dict | None = None  # the settings train used and the bundle the speed layer reads
    forced: bool = False  # published although a gate failed
    format: int = 1  # how its lists are stored (schemas/items.py); 1: JSON items

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: bytes | None) -> VersionMeta | None:
        """The record, or None when there is none; fields it does not know are ignored, missing ones default
        (a version published before a field existed)."""
        if raw is None:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in orjson.loads(raw).items() if k in known})
