"""Simulated people for experiments, where the truth is known.

`SimulatedPeople` plays users over real HTTP against the real service: each user's hidden tastes are their
held-out test ratings (the evaluation split). Shown a list, a user clicks each movie with probability `p_like`
when they rated it at least `like_rating` in the test part, `p_other` otherwise, sends the clicks (with the
answer's request_id) through POST /v1/events, and rates each liked movie they clicked (their test rating): a
conversion. A model that ranks the user's test favourites higher therefore earns more clicks.

`simulated_totals` skips HTTP and Spark: per-user totals (exposures, clicked exposures) drawn for many users,
assigned to arms by the service's own hash, for the A/A and sample-ratio checks that need hundreds of repeats.
"""
from __future__ import annotations

import random
import shutil
from collections import Counter

import numpy as np
import requests

from schemas.experiments import TREATMENT, arm_of


class SimulatedPeople:
    def __init__(self, base_url: str, token: str, tastes: dict[int, dict[int, float]], p_like: float = 0.3,
                 p_other: float = 0.02, like_rating: float = 4.0, k: int = 10, seed: int = 0):
        self.base_url, self.tastes, self.k = base_url, tastes, k
        self.p_like, self.p_other, self.like_rating = p_like, p_other, like_rating
        self.rng = random.Random(seed)
        self.http = requests.Session()
        self.auth = {"Authorization": f"Bearer {token}"}
        self.seen = Counter()  # (arm, outcome) -> count, as the simulator saw it
        self.new_clicked: dict[str, set[int]] = {}  # arm -> the movies marked new that someone clicked

    def visit(self, user_id: int) -> dict:
        """One visit: ask for recommendations, click, rate; returns the answer."""
        answer = self.http.get(f"{self.base_url}/v1/users/{user_id}/recommendations", params={"k": self.k},
                               timeout=10).json()
        liked = self.tastes.get(user_id, {})
        events = []
        for item in answer["items"]:
            movie = item["movie_id"]
            likes = liked.get(movie, 0) >= self.like_rating
            if self.rng.random() < (self.p_like if likes else self.p_other):
                events.append({"user_id": user_id, "movie_id": movie, "type": "click",
                               "request_id": answer["request_id"]})
                if item.get("new"):
                    self.new_clicked.setdefault(answer.get("arm") or "none", set()).add(movie)
                if likes:
                    events.append({"user_id": user_id, "movie_id": movie, "type": "rating",
                                   "rating": liked[movie]})
        if events:
            response = self.http.post(f"{self.base_url}/v1/events", json={"events": events}, headers=self.auth,
                                      timeout=10)
            response.raise_for_status()
        arm = answer.get("arm") or "none"
        self.seen[(arm, "exposures")] += 1
        self.seen[(arm, "clicks")] += sum(e["type"] == "click" for e in events)
        return answer

    def run(self, users: list[int], visits: int) -> dict:
        """Every user visits `visits` times, in a shuffled order (arms interleave over time)."""
        schedule = [u for u in users for _ in range(visits)]
        self.rng.shuffle(schedule)
        for user in schedule:
            self.visit(user)
        return {f"{arm}_{what}": n for (arm, what), n in sorted(self.seen.items())}


def held_out_run(config, shared, run_id: str, model: str, spark) -> None:
    """A run under `config`'s data root whose lists know only the `shared` run's training part (its ratings
    are the split's train part, its ALS model the one evaluation fitted on it), ranked by `model` (als or
    popularity): the held-out ratings stay hidden tastes the lists can find, as in the offline evaluation.
    Local data roots only."""
    from jobs import recommend
    from jobs.lib.runtime.run_layout import run_paths

    paths = run_paths(config, run_id)
    shutil.copytree(shared.root, paths.root)
    shutil.rmtree(paths.clean_ratings)
    shutil.copytree(shared.split_train, paths.clean_ratings)
    shutil.rmtree(paths.model("prod", "implicit"))
    shutil.copytree(shared.model("eval", "implicit"), paths.model("prod", "implicit"))
    recommend.run(config.model_copy(update={"recommend": config.recommend.model_copy(update={"model": model})}),
                  run_id, spark=spark)


def hidden_tastes(test_ratings) -> dict[int, dict[int, float]]:
    """{user: {movie: rating}} from a pandas frame of the held-out ratings (user_id, movie_id, rating)."""
    tastes: dict[int, dict[int, float]] = {}
    for user, movie, rating in test_ratings[["user_id", "movie_id", "rating"]].itertuples(index=False):
        tastes.setdefault(int(user), {})[int(movie)] = float(rating)
    return tastes


def simulated_totals(seed: int, users: int, share: float, treatment_lift: float = 0.0,
                     lose_treatment: float = 0.0) -> dict[str, np.ndarray]:
    """Per-user totals of an experiment with `users` people split by the service's hash at `share`: each person
    has their own click propensity (Beta(2, 18), mean 0.1) and 1 + Poisson(4) exposures; the treatment
    multiplies the propensity by 1 + treatment_lift. `lose_treatment` drops that fraction of the treatment's
    users from the log (a broken assignment or logger: what the sample-ratio check must catch)."""
    rng = np.random.default_rng(seed)
    experiment = {"salt": f"simulated-{seed}", "share": share}
    arm = np.array([arm_of(experiment, u) == TREATMENT for u in range(1, users + 1)], dtype=np.int8)
    propensity = rng.beta(2, 18, users) * np.where(arm == 1, 1 + treatment_lift, 1.0)
    exposures = 1 + rng.poisson(4, users)
    clicked = rng.binomial(exposures, np.clip(propensity, 0, 1))
    conversions = rng.binomial(clicked, 0.5)
    keep = ~((arm == 1) & (rng.random(users) < lose_treatment))
    return {"arm": arm[keep], "exposures": exposures[keep], "clicked": clicked[keep],
            "conversions": conversions[keep]}


def main() -> None:
    """Play the people of a run against a running service: `python -m benchmarks.simulated_people --run-id
    RUN` (their hidden tastes: that run's held-out ratings; the service's token: RECO_EVENTS_TOKEN)."""
    import argparse
    import os

    import pandas as pd

    from conf.settings import load_config
    from jobs.lib.runtime.run_layout import run_paths

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True, help="the run whose held-out ratings are the hidden tastes")
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('RECO_PORT', '8000')}")
    parser.add_argument("--visits", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tastes = hidden_tastes(pd.read_parquet(run_paths(load_config(), args.run_id).split_test))
    people = SimulatedPeople(args.url, os.environ["RECO_EVENTS_TOKEN"], tastes, seed=args.seed)
    print(people.run(sorted(tastes), args.visits))


if __name__ == "__main__":
    main()
