"""What a person did, and what it means for what they are shown (one definition for the batch, the speed layer
and the service).

- Seen: a movie a person rated or dismissed ("not interested") is never recommended to them again. The batch
  leaves what they rated or dismissed out of their published list and publishes it as their `seen` list (a
  filtered answer's fill-up leaves it out too); the intake adds each rating and dismissal to their `excluded`
  set at once, and every answer for them leaves that out (serving/); the speed layer leaves it out of a fold-in.
  A click is not seeing: people click what they are curious about.
- Since the version: the speed layer folds a person's ratings and clicks in stream order into `Person`, what
  their events amount to, as train reads them (schemas/preferences.py): their latest rating per movie, their
  clicks on movies they have not rated, what they dismissed.
"""

from __future__ import annotations

EVENT_TYPES = ("rating", "click", "dismiss")
SEEN_TYPES = frozenset({"rating", "dismiss"})  # events after which a movie is never shown the person again
PREFERENCE_TYPES = frozenset({"rating", "click"})  # events that tell the model what a person likes


def marks_seen(event_type: str) -> bool:
    """Whether an event of this type means the person has seen the movie (it is never shown them again)."""
    return event_type in SEEN_TYPES


class Person:
    """What one person did since their version, folded in stream order: their latest rating per movie, their
    clicks on movies they have not rated (a later rating replaces the clicks, a click after a rating counts for
    nothing, as in train), what they dismissed, and how many ratings and clicks they sent."""

    __slots__ = ("ratings", "clicks", "dismissed", "events")

    def __init__(self):
        self.ratings: dict[int, float] | None = None  # containers made on first use: most people send one event
        self.clicks: dict[int, int] | None = None
        self.dismissed: set[int] | None = None
        self.events = 0

    def apply(self, event: dict) -> None:
        """Fold in one event ({type, movie_id, rating}), the person's next in stream order."""
        movie, kind = event["movie_id"], event["type"]
        if kind == "rating":
            self.ratings = self.ratings or {}
            self.ratings[movie] = event["rating"]
            if self.clicks:
                self.clicks.pop(movie, None)
        elif kind == "click":
            if not self.ratings or movie not in self.ratings:
                self.clicks = self.clicks or {}
                self.clicks[movie] = self.clicks.get(movie, 0) + 1
        if kind == "dismiss":
            self.dismissed = self.dismissed or set()
            self.dismissed.add(movie)
        if kind in PREFERENCE_TYPES:
            self.events += 1

    def seen(self) -> set[int]:
        """The movies they rated or dismissed since the version."""
        return set(self.ratings or ()) | (self.dismissed or set())
