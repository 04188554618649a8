"""An experiment's judgement: the statistics over the per-user totals, and carrying out the decision."""
from __future__ import annotations

import numpy as np

from conf.settings import ExperimentSettings
from jobs.lib.loop import experiment_control, experiment_stats
from jobs.lib.loop.experiment_report import over_time
from schemas.experiments import TREATMENT


def judge_totals(totals, experiment: dict, guardrails: dict, settings: ExperimentSettings) -> dict:
    """The statistics over the collected per-user totals (pandas), and the over-time series."""
    if totals is None or totals.empty:
        return {"decision": experiment_stats.KEEP_RUNNING, "reasons": ["no exposures archived yet"]}
    users = totals.groupby(["user_id", "arm"], as_index=False)[["exposures", "clicked", "conversions"]].sum()
    both = int(users["user_id"].duplicated().sum())
    result = experiment_stats.judge((users["arm"] == TREATMENT).to_numpy(np.int8), users["exposures"].to_numpy(),
                                    users["clicked"].to_numpy(), users["conversions"].to_numpy(),
                                    experiment["share"], guardrails, settings)
    result["users_in_both_arms"] = both
    result["clicks"] = {arm: int(totals.loc[totals["arm"] == arm, "clicks"].sum()) for arm in ("control", TREATMENT)}
    result["over_time"] = over_time(totals, settings.alpha)
    return result


def carry_out(client, experiment: dict, decision: str | None, apply: str) -> str | None:
    """Carry out the decision when asked to for this kind of experiment; returns what was done."""
    if apply == "none" or (apply == "canary" and experiment.get("kind") != "canary"):
        return None
    if decision == experiment_stats.PROMOTE:
        experiment_control.end(client, "promoted", experiment["id"], reason="judged better (jobs/experiment.py)")
        return "promoted"
    if decision == experiment_stats.ROLL_BACK:
        experiment_control.end(client, "aborted", experiment["id"],
                               reason="judged worse or broken (jobs/experiment.py)")
        return "rolled_back"
    return None
