"""`because` for everyone at once (stacks of people with as many preferences) names what the core's one-person
fold_in/because names for each person: the batch and the speed layer give the same reasons."""
import numpy as np
import pyarrow as pa

from jobs.lib.model import fold_in as stacking
from jobs.lib.model.explain import because_of_users, with_because
from schemas.ranking import ItemFactors, because, fold_in


def people(rng, items):
    """Preferences and lists of 60 people: 1 to 12 preferences each (some on movies the model does not know,
    some clicks, some negative), lists of 1 to 5; person 99 has a list and no preferences."""
    pref_users, pref_movies, values, rated, rec_users, rec_movies = [], [], [], [], [], []
    for user in range(60):
        n = int(rng.integers(1, 13))
        pref_users += [user] * n
        pref_movies += rng.choice(np.arange(1, 46), n, replace=False).tolist()  # 41 to 45: unknown
        values += rng.choice([-1.0, 0.5, 2.0, 3.0, 4.0, 5.0], n).tolist()
        rated += (rng.random(n) < 0.8).tolist()
        k = int(rng.integers(1, 6))
        rec_users += [user] * k
        rec_movies += rng.choice(items.ids, k, replace=False).tolist()
    rec_users += [99, 99]
    rec_movies += [1, 2]
    shuffled = rng.permutation(len(rec_users))  # the lists in no particular order
    return (np.array(rec_users)[shuffled], np.array(rec_movies)[shuffled], np.array(pref_users),
            np.array(pref_movies), np.array(values, np.float32), np.array(rated))


def test_everyone_at_once_names_what_each_person_alone_gets(monkeypatch):
    rng = np.random.default_rng(11)
    items = ItemFactors(np.arange(1, 41), rng.normal(size=(40, 5)).astype(np.float32))
    rec_users, rec_movies, pref_users, pref_movies, values, rated = people(rng, items)
    monkeypatch.setattr(stacking, "STACK_PREFERENCES", 16)  # several stacks per (n, k) shape
    named = because_of_users(rec_users, rec_movies, pref_users, pref_movies, values, rated, items, 0.8, 0.05,
                             threads=2)
    expected = np.full(len(rec_users), -1)
    for user in np.unique(rec_users):
        mine = (pref_users == user) & np.isin(pref_movies, items.ids)
        if not mine.any():
            continue
        folded = fold_in(items, pref_movies[mine], values[mine], 0.8, 0.05, explain=True)
        at = np.flatnonzero(rec_users == user)
        expected[at] = [-1 if m is None else m for m in because(items, folded, rec_movies[at], rated[mine])]
    assert named.tolist() == expected.tolist()
    assert (named > 0).sum() > len(named) / 2 and (named[rec_users == 99] == -1).all()
    # Only rated movies are named, never a click.
    assert {(u, m) for u, m in zip(rec_users, named) if m > 0} <= set(zip(pref_users[rated], pref_movies[rated]))


def test_the_lists_gain_a_because_column_null_where_none():
    rng = np.random.default_rng(12)
    items = ItemFactors(np.arange(1, 41), rng.normal(size=(40, 5)).astype(np.float32))
    rec_users, rec_movies, pref_users, pref_movies, values, rated = people(rng, items)
    recs = pa.table({"user_id": pa.array(rec_users, pa.int32()), "rank": pa.array(np.ones(len(rec_users), np.int32)),
                     "movie_id": pa.array(rec_movies, pa.int32()),
                     "score": pa.array(np.zeros(len(rec_users), np.float32))})
    table = with_because(recs, pref_users, pref_movies, values, rated, items, 0.8, 0.05)
    assert table.schema.field("because_id").type == pa.int32()
    named = because_of_users(rec_users, rec_movies, pref_users, pref_movies, values, rated, items, 0.8, 0.05)
    assert table.column("because_id").to_pylist() == [None if m < 0 else m for m in named.tolist()]
