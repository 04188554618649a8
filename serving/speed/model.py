"""One version's fold-in: what the batch published for the speed layer (schemas/bundle.py, named by the
version's meta), and a person's fresh list from their training preferences plus what they did since, by the
rules train applied (schemas/preferences.py, schemas/ranking.py, schemas/people.py)."""

from __future__ import annotations

import logging
import time
from typing import cast

import numpy as np
import redis

from schemas import bundle, items
from schemas import redis_keys as rk
from schemas.events import stream_id_key
from schemas.people import Person
from schemas.preferences import person_values
from schemas.ranking import because, fold_in
from schemas.versions import VersionMeta

log = logging.getLogger("reco.speed")


class NoBundle(RuntimeError):
    """A version published without a fold-in bundle (before there were any): nothing is folded into it."""


class VersionModel:
    def __init__(self, client: redis.Redis, version: str):
        self.version = version
        meta = VersionMeta.from_json(cast(bytes | None, client.get(rk.key(version, "meta"))))
        bundle_path = (meta.fold_in or {}).get("bundle") if meta is not None else None
        if meta is None or not bundle_path:
            raise NoBundle(
                f"version {version} has no fold-in bundle: its people are answered from its lists "
                "until a version with one goes live"
            )
        self.high_water = stream_id_key(meta.events_high_water or "0-0")
        self.model = bundle.read(bundle_path)
        log.info(
            "speed layer on version %s (run %s): %d movies, %d people's training preferences",
            version,
            meta.run_id,
            len(self.model.items.ids),
            len(self.model.training.users),
        )

    def fresh_list(self, user: int, person: Person) -> bytes | None:
        """The person's list (packed, with its version, events and time: schemas/items.py), or None when what
        they did leaves nothing to fold in."""
        model, known = self.model, self.model.items.known
        training = model.training.of(user)
        rated_now = {m: r for m, r in (person.ratings or {}).items() if m in known}
        clicks = {m: c for m, c in (person.clicks or {}).items() if m in known}
        values = person_values(training, set(training), rated_now, clicks, model.settings)
        if not values or not person.events:  # a dismissal alone: the service's exclusions already hide the movie
            return None
        seen = set(training) | set(rated_now) | model.dismissed.of(user) | (person.dismissed or set())
        movies, prefs = model.training.scaled(values)
        folded = fold_in(model.items, movies, prefs, model.settings["alpha"], model.settings["reg_param"], explain=True)
        best = model.items.top_n(folded.vector, model.top_n, seen)
        named = model.training.rated_by(user) | set(rated_now)  # what `because` may name: ratings, not clicks
        reasons = because(model.items, folded, np.array([m for m, _ in best]), [m in named for m in movies.tolist()])
        header = {"version": self.version, "events": person.events, "updated_at": round(time.time(), 3)}
        return items.pack([m for m, _ in best], [s for _, s in best], reasons, header=header)
