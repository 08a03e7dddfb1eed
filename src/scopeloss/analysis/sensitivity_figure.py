"""Claim D's figure: each swept loss parameter against the final score, a panel per task
(``python -m scopeloss.analysis.figures sensitivity``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scopeloss import atomic  # noqa: E402

from . import stats  # noqa: E402
from .aggregate import read_table  # noqa: E402
from .reference import (cls_loss_name,  # noqa: E402
                        env_sort_key, rl_loss_name)
from .plotting import (PAPER_WIDTH_IN, STYLE,  # noqa: E402
                       footnote, loss_color, save_figure)


SENSITIVITY = {  # per half: the table, its task and value columns, the value's words
    "rl": ("rl_final_runs", "final return (raw score)", "env"),
    "classification": ("classification_summary", "mean per-class test precision", None),
}


def _sensitivity_runs(tables, half: str) -> pd.DataFrame:
    """One row per run: task (env, or dataset / experiment), loss, value (NaN unless the
    run finished with a value: no final episode, a failed run)."""
    if half == "rl":
        runs = read_table(tables, "rl_final_runs")
        done = (runs["status"] == "complete") & runs["final_return"].notna()
        return pd.DataFrame({"task": runs["env"], "loss": runs["loss"],
                             "y": runs["final_return"].astype(float).where(done)})
    summary = read_table(tables, "classification_summary")
    done = (summary["status"] == "complete") & summary["precision_mean"].notna()
    return pd.DataFrame({"task": summary["dataset"] + " / " + summary["experiment"],
                         "loss": summary["loss"],
                         "y": summary["precision_mean"].astype(float).where(done)})


def sensitivity_points(runs: pd.DataFrame, members: Sequence[dict]) -> pd.DataFrame:
    """Per sweep member and task: the raw value's mean, min and max across seeds (no
    normalisation over the grid's runs); and, as the ``all`` rows, claim D's scale: the mean
    over tasks of (member - default) in each task's pooled within-cell sd."""
    sd = {t: stats.pooled_sd([g["y"].to_numpy(float) for _, g in x.groupby("loss")])
          for t, x in runs.groupby("task")}
    rows = []
    for swept, param in dict.fromkeys((m["swept"], m["param"]) for m in members):
        ms = [m for m in members if (m["swept"], m["param"]) == (swept, param)]
        default = next(m for m in ms if m["default"])
        base = runs[runs["loss"] == default["name"]].groupby("task")["y"].mean()
        for m in ms:
            mine = runs[runs["loss"] == m["name"]]
            ident = {"swept": swept, "param": param, "value": m["value"], "loss": m["name"],
                     "default": m["default"],
                     "registered": bool(np.isclose(m.get("registered", np.nan), m["value"]))}
            for task, g in mine.groupby("task"):
                y = g["y"].to_numpy(float)
                rows.append({**ident, "task": task, "n_runs": y.size, "y": y.mean(),
                             "low": y.min(), "high": y.max()})
            shared = [t for t in mine["task"].unique() if t in base.index and sd.get(t, 0) > 0]
            if shared:
                d = [(mine.loc[mine["task"] == t, "y"].mean() - base[t]) / sd[t] for t in shared]
                rows.append({**ident, "task": "all", "n_runs": len(mine), "y": float(np.mean(d)),
                             "low": float(np.min(d)), "high": float(np.max(d))})
    return pd.DataFrame(rows, columns=["swept", "param", "value", "loss", "default",
                                       "registered", "task", "n_runs", "y", "low", "high"])


def _sensitivity_panel(ax, points: pd.DataFrame, lines, task: str, *, half: str, name,
                       ylabel: str, margin: float) -> None:
    """One task's panel: a line per swept parameter with the seeds' band, the registered
    default ringed, a grid default an overlay moved squared; the last panel on claim D's
    scale with the margin dashed."""
    for swept, param in lines:
        sub = points[(points["swept"] == swept) & (points["param"] == param)
                     ].sort_values("value")
        if sub.empty:
            continue
        color = loss_color(swept, kind="ppo" if half == "rl" else "supervised")
        ax.fill_between(sub["value"], sub["low"], sub["high"], color=color, alpha=0.18,
                        linewidth=0)
        ax.plot(sub["value"], sub["y"], color=color, marker="o", markersize=3,
                label=f"{name(swept)}: {param}")
        ring = sub[sub["registered"]]
        ax.plot(ring["value"], ring["y"], linestyle="none", marker="o", markersize=8,
                markerfacecolor="none", markeredgecolor=color)
        grid_default = sub[sub["default"] & ~sub["registered"]]
        ax.plot(grid_default["value"], grid_default["y"], linestyle="none", marker="s",
                markersize=7, markerfacecolor="none", markeredgecolor=color)
    ax.set_xscale("log")
    ax.set_xlabel("parameter value")
    if task == "all":
        ax.axhline(0.0, color="0.4", linewidth=0.6)
        ax.axhline(-margin, color="0.4", linewidth=0.8, linestyle="--")
        ax.set_title("claim D's scale (all tasks)")
        ax.set_ylabel("value - default (sd)")
    else:
        ax.set_title(task)
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25, linewidth=0.5)


def _describe(fig, points: pd.DataFrame, tasks: list[str], lines, *, ylabel: str,
              margin: float, moved: list[str], left_out: list[str]) -> str:
    """The figure's footnote, drawn; its description (what the PNG's metadata says)."""
    seeds = points.loc[points["task"] != "all", "n_runs"]
    footnote(fig, f"Per task: mean {ylabel} across seeds (band: the seeds' range; "
             f"{_span_words(seeds)} seeds per point), not normalised. Last panel: "
             "(mean at the value - mean at the default) / the task's pooled within-cell "
             f"sd, mean over tasks (band: the tasks' range); dashed: -{margin:g} sd, "
             "claim D's non-inferiority margin (claims.md has the test). Ringed: the "
             "loss's registered default" + ("; square: the grid's default, moved by an "
             "overlay: " + "; ".join(moved) if moved else "") + "."
             + (f" Left out, no finished run with a value: {', '.join(left_out)}."
                if left_out else ""))
    fig.tight_layout()
    desc = ("panels: " + ", ".join(tasks) + "; lines: "
            + ", ".join(f"{s}:{p}" for s, p in lines) + "; values: "
            + ", ".join(f"{v:g}" for v in sorted(set(points["value"])))
            + "; y: " + ylabel + ("; overlay default: " + "; ".join(moved) if moved
                                  else "")
            + ("; left out: " + ", ".join(left_out) if left_out else ""))
    return desc


def plot_sensitivity(tables: str | Path, out: str | Path, members: Sequence[dict], *,
                     half: str = "rl", margin: float = 0.5) -> dict:
    """figures/{rl,classification}_sensitivity.png (and .pdf, and the plotted numbers as
    .csv): each task's raw metric (RL: final return; classification: mean per-class test
    precision) against each swept parameter (log axis), mean across seeds with the seeds'
    range as a band; a last panel on claim D's scale (value - default in per-task sd, mean
    over tasks, the tasks' range as a band) with the non-inferiority margin drawn. Ringed:
    the loss's registered default; a square marks the grid's default where an overlay
    changed it."""
    table, ylabel, _ = SENSITIVITY[half]
    every_run = _sensitivity_runs(tables, half)
    runs = every_run.dropna(subset=["y"])
    points = sensitivity_points(runs, members)
    out = Path(out)
    tasks = sorted(set(points["task"]) - {"all"}, key=env_sort_key) + ["all"]
    swept_losses = {m["name"] for m in members}
    left_out = sorted(set(every_run.loc[every_run["loss"].isin(swept_losses), "task"])
                      - set(tasks), key=env_sort_key)
    lines = list(dict.fromkeys(zip(points["swept"], points["param"])))
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    name = rl_loss_name if half == "rl" else cls_loss_name
    moved = sorted({f"{name(m['swept'])} runs with {m['param']}={m['value']:g} (registered "
                    f"{m['registered']:g})" for m in members
                    if m["default"] and m.get("registered") is not None
                    and not np.isclose(m["registered"], m["value"])})
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                                 figsize=(PAPER_WIDTH_IN, 1.9 * nrows + 0.8))
        for ax in axes.flat[len(tasks):]:
            ax.axis("off")
        if points.empty:
            axes.flat[0].text(0.5, 0.5, "no finished run of a sweep yet", ha="center",
                              va="center")
        for ax, task in zip(axes.flat, tasks):
            _sensitivity_panel(ax, points[points["task"] == task], lines, task, half=half,
                               name=name, ylabel=ylabel, margin=margin)
        handles, labels = axes.flat[len(tasks) - 1].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)),
                       bbox_to_anchor=(0.5, 1.0), frameon=False)
        desc = _describe(fig, points, tasks, lines, ylabel=ylabel, margin=margin, moved=moved,
                         left_out=left_out)
        paths = save_figure(fig, out, ("png", "pdf"), desc)
        plt.close(fig)
    atomic.write_csv(out.with_suffix(".csv"), points)
    return {"paths": paths + [out.with_suffix(".csv")], "points": points, "panels": tasks,
            "left_out": left_out}


def _span_words(counts: pd.Series) -> str:
    if counts.empty:
        return "no"
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo}" if lo == hi else f"{lo}-{hi}"
