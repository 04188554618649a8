"""The experiment's report page (experiment/report.html): the decision and its reasons, the table of metrics per
arm with intervals, and the click-through rate per arm over the experiment's time with 95% intervals."""
from __future__ import annotations

import html
import json
import math

import numpy as np
from scipy import stats

from jobs.lib.evaluation.charts import png_base64
from jobs.lib.loop.experiment_evidence import CHECKPOINTS
from jobs.lib.loop.experiment_stats import ratio_by_arm
from schemas.experiments import ARMS
from schemas.storage import write_text


def over_time(totals, alpha: float) -> list[dict]:
    """Cumulative clicks per exposure per arm at each checkpoint of the time span, with (1 - alpha) intervals
    clustered by user. `totals`: pandas rows of (user_id, arm, checkpoint, exposures, clicked, ...)."""
    z = stats.norm.ppf(1 - alpha / 2)
    points = []
    for checkpoint in sorted(totals["checkpoint"].unique()):
        upto = totals[totals["checkpoint"] <= checkpoint].groupby(["user_id", "arm"])[["exposures", "clicked"]].sum()
        point = {"checkpoint": int(checkpoint)}
        for arm in ARMS:
            rows = upto.xs(arm, level="arm") if arm in upto.index.get_level_values("arm") else None
            if rows is None or len(rows) < 2:
                continue
            ratio, variance, _ = ratio_by_arm(rows["clicked"].to_numpy(float), rows["exposures"].to_numpy(float))
            half = z * math.sqrt(variance)
            point[arm] = {"users": len(rows), "ctr": ratio, "low": ratio - half, "high": ratio + half}
        points.append(point)
    return points


def render(report: dict) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    experiment = report["experiment"]
    images = ""
    points = report.get("over_time") or []
    if points:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for arm, color in zip(ARMS, ("tab:blue", "tab:orange")):
            series = [(p["checkpoint"] + 1, p[arm]) for p in points if arm in p]
            if not series:
                continue
            xs = np.array([x for x, _ in series]) * 100 / CHECKPOINTS
            ax.plot(xs, [v["ctr"] for _, v in series], marker="o", color=color,
                    label=f"{arm} ({experiment[arm]})")
            ax.fill_between(xs, [v["low"] for _, v in series], [v["high"] for _, v in series], color=color,
                            alpha=0.2)
        ax.set_xlabel("% of the experiment's time span so far")
        ax.set_ylabel("clicked exposures / exposures")
        ax.set_title("Click-through per exposure, cumulative, 95% intervals clustered by user")
        ax.legend()
        images = f'<img alt="click-through over time" src="data:image/png;base64,{png_base64(fig)}">'
        plt.close(fig)

    rows = ""
    for name, m in (report.get("metrics") or {}).items():
        if "p_value" not in m:
            continue
        lift = f"{m['lift']:+.1%}" if m.get("lift") is not None else "n/a"
        rows += (f"<tr><td>{name}</td><td>{m['control']:.4f}</td><td>{m['treatment']:.4f}</td>"
                 f"<td>{m['difference']:+.4f} [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]</td><td>{lift}</td>"
                 f"<td>{m['p_value']:.3g}</td></tr>")
    srm = report.get("srm") or {}
    guard = "".join(f"<li>{html.escape(name)}: {'passed' if c['passed'] else 'FAILED'} "
                    f"<code>{html.escape(json.dumps({k: v for k, v in c.items() if k != 'passed'}))}</code></li>"
                    for name, c in (report.get("guardrails") or {}).items())
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.get("reasons", []))
    title = html.escape(experiment["id"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Experiment {title}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
.decision{{font-size:1.4em;font-weight:bold}}</style></head><body>
<h1>Experiment {html.escape(experiment['id'])}</h1>
<p>{html.escape(experiment['kind'])}: control <code>{html.escape(experiment['control'])}</code>, treatment
<code>{html.escape(experiment['treatment'])}</code> for {experiment['share']:.0%} of users, since
{html.escape(experiment['started_at'])}. Judged {html.escape(report['judged_at'])}
(run {html.escape(report['run_id'])}).</p>
<p class="decision">Decision: {html.escape(str(report['decision']))}</p><ul>{reasons}</ul>
<p>Users {report.get('users')}, exposures {report.get('exposures')}; sample-ratio check:
{'passed' if srm.get('passed') else 'FAILED'} (p = {srm.get('p_value', float('nan')):.3g}).</p>
<table><tr><th>metric</th><th>control</th><th>treatment</th><th>difference [95% interval]</th><th>lift</th>
<th>p-value</th></tr>{rows}</table>
<h2>Guardrails</h2><ul>{guard or '<li>no answers logged</li>'}</ul>
<p>Power: <code>{html.escape(json.dumps(report.get('power')))}</code></p>
{images}
</body></html>"""


def write_report(path: str, report: dict) -> str:
    write_text(path, render(report))
    return path
