"""The evaluation report of a run: one self-contained HTML page (report.html in the run folder) with plots of
ALS against the popularity baseline, against previous runs of the same dataset, and by user-activity bucket."""
from __future__ import annotations

import html
import json
from pathlib import Path

from conf.settings import Config
from jobs.lib.evaluation.charts import png_base64
from jobs.lib.runtime.run_layout import RunPaths
from schemas.storage import is_local, join, write_text

RANKING = ("precision@{k}", "recall@{k}", "ndcg@{k}", "map@{k}", "coverage")


def previous_runs(config: Config, dataset: str) -> list[dict]:
    """metrics.json of every run of this dataset under the data root, oldest first (local data roots only)."""
    runs = Path(join(config.data_root, "runs"))
    if not is_local(config.data_root) or not runs.is_dir():
        return []
    found = []
    for path in runs.glob("*/metrics.json"):
        if path.parent.is_symlink():
            continue
        metrics = json.loads(path.read_text())
        if metrics.get("dataset") == dataset:
            found.append(metrics)
    return sorted(found, key=lambda m: m.get("evaluated_at", ""))


def render(metrics: dict, history: list[dict]) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = metrics["k"]
    als, pop = metrics["models"]["als"], metrics["models"]["popularity"]
    names = [n.format(k=k) for n in RANKING]
    figures = []

    fig, ax = plt.subplots(figsize=(7, 3.2))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [als[n] for n in names], 0.4, label="ALS (implicit)")
    ax.bar([x + 0.2 for x in xs], [pop[n] for n in names], 0.4, label="popularity")
    ax.set_xticks(list(xs), names)
    ax.set_title("Ranking quality on the held-out 25%")
    ax.legend()
    figures.append(("ALS against the popularity baseline", png_base64(fig)))
    plt.close(fig)

    buckets = [b for b in ("1-19", "20-49", "50-99", "100-249", "250+") if b in als["by_activity"]]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for label, model in (("ALS", als), ("popularity", pop)):
        ax.plot(buckets, [model["by_activity"][b][f"ndcg@{k}"] for b in buckets], marker="o", label=label)
    ax.set_xlabel("training ratings per user")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("By user activity (users per bucket: " +
                 ", ".join(f"{b}: {als['by_activity'][b]['users']}" for b in buckets) + ")", fontsize=9)
    ax.legend()
    figures.append(("By user-activity bucket", png_base64(fig)))
    plt.close(fig)

    if len(history) > 1:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        labels = [m["run_id"][-18:] for m in history]
        ax.plot(labels, [m["models"]["als"][f"ndcg@{k}"] for m in history], marker="o", label="ALS")
        ax.plot(labels, [m["models"]["popularity"][f"ndcg@{k}"] for m in history], marker="o", label="popularity")
        ax.set_ylabel(f"NDCG@{k}")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
        ax.legend()
        figures.append(("Against previous runs of this dataset", png_base64(fig)))
        plt.close(fig)

    live_profile = (metrics.get("drift") or {}).get("live_profile")
    if live_profile and metrics.get("profile"):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for ax, key, title in ((axes[0], "rating_shares", "Ratings per value"),
                               (axes[1], "activity_shares", "Users per number of ratings (power of 2)")):
            bins = sorted(set(metrics["profile"][key]) | set(live_profile[key]), key=float)
            xs = range(len(bins))
            ax.bar([x - 0.2 for x in xs], [live_profile[key].get(b, 0) for b in bins], 0.4, label="live run")
            ax.bar([x + 0.2 for x in xs], [metrics["profile"][key].get(b, 0) for b in bins], 0.4, label="this run")
            ax.set_xticks(list(xs), bins, fontsize=7)
            ax.set_title(title, fontsize=9)
        axes[0].legend()
        figures.insert(0, ("Data drift: this run against the live run", png_base64(fig)))
        plt.close(fig)

    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{als[n]:.4f}</td><td>{pop[n]:.4f}</td></tr>"
        for n in [*names, "popularity_percentile", "rmse", "mae"])
    gates = "".join(f"<li>{'passed' if g['passed'] else '<b>FAILED</b>'}: {html.escape(g['gate'])}</li>"
                    for g in metrics.get("gates", []))
    drift = metrics.get("drift") or {}
    drift_rows = "".join(
        f"<tr><td>{html.escape(c['gate'])}</td><td>{c['value']:.4f}</td><td>{c['limit']}</td>"
        f"<td>{'passed' if c['passed'] else '<b>FAILED</b>'}</td></tr>" for c in drift.get("checks", []))
    drift_html = (f"<h2>Data drift</h2><p>{html.escape(drift.get('note', ''))}</p>"
                  + (f"<table><tr><th>check</th><th>value</th><th>limit</th><th></th></tr>{drift_rows}</table>"
                     if drift_rows else ""))
    images = "".join(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>"
                     for title, png in figures)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Evaluation of run {html.escape(metrics['run_id'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}}
td:first-child{{text-align:left}}</style></head><body>
<h1>Run {html.escape(metrics['run_id'])} · {html.escape(metrics['dataset'])}</h1>
<p>Evaluated {html.escape(metrics['evaluated_at'])}; {metrics['counts']['test_users']} users with test ratings;
publishable: <b>{metrics['publishable']}</b> ({html.escape(metrics.get('live_comparison', ''))}).</p>
<ul>{gates}</ul>
<table><tr><th>metric</th><th>ALS</th><th>popularity</th></tr>{rows}</table>
{drift_html}
{images}
<p>Parameters: <code>{html.escape(json.dumps(metrics['params']))}</code></p>
</body></html>"""


def write_report(config: Config, paths: RunPaths, metrics: dict) -> str:
    history = previous_runs(config, metrics["dataset"])
    if not any(m["run_id"] == metrics["run_id"] for m in history):
        history.append(metrics)
    write_text(paths.evaluation_report, render(metrics, history))
    return paths.evaluation_report
