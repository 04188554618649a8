"""What the speed layer holds per person (schemas/people.py Person): the events' effect in stream order, as
train builds preferences, in a bounded number of bytes; and the seen rule."""
import tracemalloc

from schemas.people import Person, marks_seen


def event(kind, movie, rating=None):
    return {"type": kind, "movie_id": movie, "rating": rating}


def test_a_rating_replaces_earlier_clicks_and_later_clicks_count_for_nothing():
    person = Person()
    for e in (event("click", 1), event("click", 1), event("rating", 1, 4.0), event("click", 1),
              event("click", 2), event("rating", 3, 2.0), event("rating", 3, 5.0), event("dismiss", 4)):
        person.apply(e)
    assert person.ratings == {1: 4.0, 3: 5.0} and person.clicks == {2: 1} and person.dismissed == {4}
    assert person.events == 7  # ratings and clicks, as the fold-in's `events` counts what was sent


def test_a_person_takes_under_a_kilobyte_with_five_events():
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    people = {}
    for user in range(1_000_000, 1_010_000):
        person = people[user] = Person()
        for movie in range(1000, 1005):
            person.apply(event("rating" if movie % 3 else "click", movie, 4.0))
    held = (tracemalloc.get_traced_memory()[0] - before) / len(people)
    tracemalloc.stop()
    assert held < 1000, held  # conf/settings.py speed.max_people says 0.8 KB


def test_what_a_person_has_seen_is_what_they_rated_or_dismissed():
    assert [marks_seen(kind) for kind in ("rating", "click", "dismiss")] == [True, False, True]
    person = Person()
    for e in (event("rating", 1, 4.0), event("click", 2), event("dismiss", 3)):
        person.apply(e)
    assert person.seen() == {1, 3}
