"""The statistics of an experiment's judgement, on per-user totals (numpy and scipy; no Spark).

The unit of randomisation is the user, so every interval is clustered by user: the exposures of one person are
not independent (the same person, the same list). A metric per exposure (clicked exposures / exposures) is a
ratio of per-user sums, and its variance comes from the delta method over users:

    R = sum(y) / sum(x),  Var(R) ~ (s_y^2 - 2 R s_xy + R^2 s_x^2) / (n * mean(x)^2)

which is what a per-user bootstrap estimates too, in closed form (Deng et al., "Applying the Delta Method in
Metric Analytics", 2018). A naive per-exposure z-test would treat 50 exposures of one user as 50 people and
claim significance far too often. The arms are independent, so the variance of the difference is the sum.

Inputs are arrays with one entry per user: `arm` (0 control, 1 treatment), `exposures`, `clicked` (exposures
with at least one click) and `conversions` (shown movies the user then rated highly).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

PROMOTE, KEEP_RUNNING, ROLL_BACK = "promote", "keep_running", "roll_back"


def ratio_by_arm(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float, float]:
    """(ratio of sums, its delta-method variance, the per-user variance of the linearised metric)."""
    n = len(denominator)
    x_mean = denominator.mean()
    ratio = numerator.sum() / denominator.sum()
    if n < 2:
        return float(ratio), float("nan"), float("nan")
    cov = np.cov(numerator, denominator, ddof=1)
    per_user = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / x_mean**2
    return float(ratio), float(per_user / n), float(per_user)


def compare_ratio(arm: np.ndarray, numerator: np.ndarray, denominator: np.ndarray, alpha: float) -> dict:
    """Treatment minus control of sum(numerator)/sum(denominator), clustered by user: the difference, its
    (1 - alpha) interval, the relative lift and the two-sided p-value."""
    control = ratio_by_arm(numerator[arm == 0], denominator[arm == 0])
    treatment = ratio_by_arm(numerator[arm == 1], denominator[arm == 1])
    diff = treatment[0] - control[0]
    se = math.sqrt(control[1] + treatment[1])
    z = stats.norm.ppf(1 - alpha / 2)
    p_value = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    return {"control": control[0], "treatment": treatment[0], "difference": diff,
            "ci_low": float(diff - z * se), "ci_high": float(diff + z * se), "p_value": p_value,
            "lift": diff / control[0] if control[0] else None, "per_user_variance": control[2]}


def compare_user_means(arm: np.ndarray, values: np.ndarray, alpha: float) -> dict:
    """Treatment minus control of a per-user value (e.g. each user's own click-through rate): Welch's t-test,
    one observation per user."""
    a, b = values[arm == 0], values[arm == 1]
    diff = float(b.mean() - a.mean())
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    result = stats.ttest_ind(b, a, equal_var=False)
    dof = float(result.df) if hasattr(result, "df") else len(a) + len(b) - 2
    t = stats.t.ppf(1 - alpha / 2, dof)
    return {"control": float(a.mean()), "treatment": float(b.mean()), "difference": diff,
            "ci_low": float(diff - t * se), "ci_high": float(diff + t * se),
            "p_value": float(result.pvalue) if se > 0 else 1.0,
            "lift": float(diff / a.mean()) if a.mean() else None}


def sample_ratio(users_control: int, users_treatment: int, share: float, alpha: float) -> dict:
    """Chi-square test of the users per arm against the configured share: a mismatch means the assignment or
    the logging is broken and no result of the experiment can be trusted."""
    total = users_control + users_treatment
    expected = [total * (1 - share), total * share]
    chi2, p_value = stats.chisquare([users_control, users_treatment], expected)
    return {"users": {"control": users_control, "treatment": users_treatment}, "expected_share": share,
            "observed_share": users_treatment / total if total else None, "chi2": float(chi2),
            "p_value": float(p_value), "passed": bool(p_value >= alpha)}


def users_needed(per_user_variance: float, baseline: float, relative_lift: float, share: float, alpha: float,
                 power: float) -> int | None:
    """Users (both arms together, split by `share`) to detect `relative_lift` of `baseline` with `power` at
    two-sided `alpha`: N = (z_(1-alpha/2) + z_power)^2 * var * (1/share + 1/(1-share)) / delta^2."""
    delta = baseline * relative_lift
    if not delta or not math.isfinite(per_user_variance):
        return None
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return math.ceil(z**2 * per_user_variance * (1 / share + 1 / (1 - share)) / delta**2)


def judge(arm: np.ndarray, exposures: np.ndarray, clicked: np.ndarray, conversions: np.ndarray, share: float,
          guardrails: dict, settings) -> dict:
    """Every figure of the judgement and the decision. `settings`: conf.settings.ExperimentSettings.
    `guardrails`: {"control"|"treatment": {"error_rate", "p99_ms"}} from the exposure log."""
    arm = np.asarray(arm)
    exposures, clicked, conversions = (np.asarray(v, dtype=float) for v in (exposures, clicked, conversions))
    users = {"control": int((arm == 0).sum()), "treatment": int((arm == 1).sum())}
    srm = sample_ratio(users["control"], users["treatment"], share, settings.srm_alpha)
    result = {"users": users, "exposures": {"control": int(exposures[arm == 0].sum()),
                                            "treatment": int(exposures[arm == 1].sum())},
              "srm": srm, "guardrails": _guardrails(guardrails, settings)}
    if min(users.values()) < 2:
        result.update(decision=KEEP_RUNNING, reasons=["fewer than two users in an arm: nothing to compare yet"])
        return result
    ctr = compare_ratio(arm, clicked, exposures, settings.alpha)
    result["metrics"] = {
        "ctr_per_exposure": ctr,
        "ctr_per_user": compare_user_means(arm, clicked / exposures, settings.alpha),
        "conversions_per_exposure": compare_ratio(arm, conversions, exposures, settings.alpha),
        "clicked_exposures": {"control": int(clicked[arm == 0].sum()), "treatment": int(clicked[arm == 1].sum())},
    }
    needed = users_needed(ctr["per_user_variance"], ctr["control"], settings.min_detectable_lift, share,
                          settings.alpha, settings.power)
    result["power"] = {"min_detectable_lift": settings.min_detectable_lift, "power": settings.power,
                       "users_needed": needed, "users_so_far": sum(users.values())}
    result["decision"], result["reasons"] = decide(ctr, srm, result["guardrails"], users, needed, settings)
    return result


def _guardrails(observed: dict, settings) -> dict:
    control, treatment = observed.get("control") or {}, observed.get("treatment") or {}
    checks = {}
    if control.get("error_rate") is not None and treatment.get("error_rate") is not None:
        increase = treatment["error_rate"] - control["error_rate"]
        checks["error_rate"] = {"control": control["error_rate"], "treatment": treatment["error_rate"],
                                "limit": f"treatment - control <= {settings.max_error_rate_increase}",
                                "passed": increase <= settings.max_error_rate_increase}
    if control.get("p99_ms") and treatment.get("p99_ms") is not None:
        ratio = treatment["p99_ms"] / control["p99_ms"]
        checks["p99_latency"] = {"control_ms": control["p99_ms"], "treatment_ms": treatment["p99_ms"],
                                 "ratio": round(ratio, 3), "limit": f"treatment / control <= {settings.max_p99_ratio}",
                                 "passed": ratio <= settings.max_p99_ratio}
    return checks


def decide(ctr: dict, srm: dict, guardrails: dict, users: dict, needed: int | None, settings) -> tuple[str, list]:
    """promote, keep_running or roll_back, with the reasons in words."""
    if not srm["passed"]:
        return ROLL_BACK, [f"sample ratio mismatch (p = {srm['p_value']:.2g} < {settings.srm_alpha}): users per "
                           f"arm {srm['users']} against a treatment share of {srm['expected_share']}; the "
                           "assignment or the exposure log is broken, so no result can be trusted"]
    failed = [name for name, check in guardrails.items() if not check["passed"]]
    if failed:
        return ROLL_BACK, [f"guardrail failed: {name} ({guardrails[name]['limit']})" for name in failed]
    if min(users.values()) < settings.min_users_per_arm:
        return KEEP_RUNNING, [f"fewer than {settings.min_users_per_arm} users in an arm ({users})"]
    lift = f"{ctr['lift']:+.1%}" if ctr["lift"] is not None else "n/a"
    if ctr["p_value"] < settings.alpha:
        better = ctr["difference"] > 0
        return (PROMOTE if better else ROLL_BACK), [
            f"clicks per exposure {lift} (p = {ctr['p_value']:.2g} < {settings.alpha}): the treatment is "
            f"{'better' if better else 'worse'}"]
    more = f"; about {needed} users in all are needed to detect a {settings.min_detectable_lift:.0%} lift " \
           f"with {settings.power:.0%} power" if needed else ""
    return KEEP_RUNNING, [f"no significant difference yet (lift {lift}, p = {ctr['p_value']:.2g}){more}"]
