"""Figures from the tidy tables.

``python -m scopeloss.analysis.figures curves --tables results/tables --out figures/rl_training_curves.png``
  The paper's Figure 2: one panel per environment (the paper's order), one line per loss
  (fixed colours), mean across seeds of each run's return smoothed by a rolling mean over
  ``--window`` episodes, with a 95% bootstrap band across seeds; x = agent steps. Writes
  the .png and a .pdf beside it.
``python -m scopeloss.analysis.figures exploration --tables results/tables --out figures/rl_exploration.png``
  Exploration diagnostics: a row per environment, policy entropy and mean max-action
  probability (``updates.csv``) against agent steps, one line per loss, mean across seeds
  of a rolling mean over ``--window`` updates with a 95% bootstrap band. .png and .pdf.
``python -m scopeloss.analysis.figures sensitivity --tables results/tables --out figures/rl_sensitivity.png --sweeps JSON``
  Claim D's figure: normalised final score against each swept loss parameter (log axis),
  a panel per environment and one over all of them, seed bands; .png, .pdf, .csv.
``python -m scopeloss.analysis.figures aggregate --tables results/tables --out figures/rl_aggregate.png``
  Normalised final scores (Atari human-normalised, StarPilot Procgen min-max, MinAtar
  random = 0 and Young & Tian's AC(lambda) = 1) aggregated across
  games and seeds: IQM and mean with stratified-bootstrap 95% CIs, and the probability
  that Scope improves on each other loss. Its numbers go to a .csv beside the figure.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scopeloss import atomic  # noqa: E402

from . import stats  # noqa: E402
from .aggregate import grid_normalised, read_table  # noqa: E402
from .reference import (add_loss_styles_argument, add_sweeps_argument, cls_loss_name,  # noqa: E402
                        env_sort_key, rl_loss_name,
                        rl_loss_sort_key, use_loss_styles)
from .runs import RESUME_FLAG, RunFileError  # noqa: E402
from .plotting import (DEFAULT_POINTS, DEFAULT_WINDOW, PAPER_WIDTH_IN, STYLE,  # noqa: E402
                       TRUNCATED_SHARE_NOTE, curve_panel, footnote, loss_color, loss_legend,
                       run_horizons, save_figure, seeds_per_curve, smoothed_curves, step_axis,
                       truncated_runs)


def plot_training_curves(tables: str | Path, out: str | Path, *, window: int = DEFAULT_WINDOW,
                         points: int = DEFAULT_POINTS, reps: int = 2000,
                         seed: int = 0) -> dict:
    """Figure 2; returns {'panels': [env, ...], 'paths': [...], 'missing': [...],
    'truncated': [(env, loss, seed, share), ...]}.

    Episodes cut short by a kill and resume (``truncated_by_resume``) are left out. A run
    whose share of time-limit truncations is above 5% is named in its panel."""
    episodes = read_table(tables, "rl_episodes")
    if RESUME_FLAG in episodes:
        episodes = episodes[episodes[RESUME_FLAG].fillna(0) == 0]
    runs = read_table(tables, "rl_final_runs")
    if runs.empty:
        raise RunFileError(f"{Path(tables) / 'rl_final_runs'}: no runs to plot")
    envs = sorted(runs["env"].unique(), key=env_sort_key)
    losses = sorted(runs["loss"].unique(), key=rl_loss_sort_key)
    horizons = run_horizons(runs)
    missing = runs.loc[runs["episodes"] == 0, ["env", "loss", "seed"]]
    cut = truncated_runs(runs)

    ncols = min(4, len(envs))
    nrows = math.ceil(len(envs) / ncols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                                 figsize=(PAPER_WIDTH_IN, 1.75 * nrows + 0.7))
        for ax, env in zip(axes.flat, envs):
            step_axis(ax, env)
            if not curve_panel(ax, episodes[episodes["env"] == env], runs[runs["env"] == env],
                               losses, points=points, empty_text="no episode logged yet",
                               curves=lambda sub, grid, env=env: smoothed_curves(
                                   sub, {s: horizons.get((env, sub["loss"].iloc[0], s), np.inf)
                                         for s in sub["seed"].unique()}, grid, window),
                               reps=reps, seed=seed, gid=env):
                continue
            env_cut = cut[cut["env"] == env]
            if len(env_cut):
                ax.text(0.02, 0.98, "time-limit truncations:\n" + "\n".join(
                    f"{rl_loss_name(r.loss)} s{r.seed}: {r.truncated_share:.0%}"
                    for r in env_cut.itertuples(index=False)), transform=ax.transAxes,
                    ha="left", va="top", fontsize=6, color="#b00000", gid="truncated-note")
        for ax in axes.flat[len(envs):]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("Episode return")
        for col in range(ncols):  # x labels under the lowest visible panel of each column
            visible = [axes[r, col] for r in range(nrows) if axes[r, col].get_visible()]
            if visible:
                visible[-1].set_xlabel("Agent steps")
        loss_legend(fig, losses)
        note = (f"Mean across seeds ({seeds_per_curve(episodes)} per curve) of the rolling "
                f"mean return over {window} episodes; shaded: 95% bootstrap CI across seeds. "
                "Atari: 1 agent step = 4 frames. Episodes cut by a kill/resume left out.")
        if len(cut):
            note += (f" Red notes: runs with more than {TRUNCATED_SHARE_NOTE:.0%} of episodes "
                     "cut by the time limit.")
        footnote(fig, note)
        desc = "panels: " + ", ".join(envs) + "; losses: " + ", ".join(losses)
        paths = save_figure(fig, Path(out), ("png", "pdf"), desc)
        plt.close(fig)
    return {"panels": list(envs), "losses": list(losses), "paths": paths,
            "missing": [tuple(r) for r in missing.itertuples(index=False)],
            "truncated": [(r.env, r.loss, r.seed, float(r.truncated_share))
                          for r in cut.itertuples(index=False)]}


# ---------------------------------------------------------------------------- exploration
EXPLORATION_METRICS = {"entropy": "Policy entropy (nats)",
                       "max_prob": "Mean max-action probability",
                       # the paper's Figure 1 argument: the agent makes its own data imbalanced
                       "action_top_share": "Commonest action's share"}
SHARES = ("max_prob", "action_top_share")  # at most 1
DEFAULT_UPDATE_WINDOW = 5


def readable_y(ax, top: float | None = None, rel_span: float = 0.05) -> None:
    """A y axis that shows its curves: plain tick labels (no ``1e-6 + 1.79175`` offset), at
    least ``rel_span`` of the curves' level in view (flat curves are not drawn as noise
    filling the panel), at most ``top``."""
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    lo, hi = ax.get_ylim()
    mid, span = (lo + hi) / 2, max(rel_span * max(abs((lo + hi) / 2), 0.1), hi - lo)
    lo, hi = mid - span / 2, mid + span / 2
    if top is not None and hi > top:
        lo, hi = lo - (hi - top), top
    ax.set_ylim(lo, hi)


def exploration_figure(updates: pd.DataFrame, runs: pd.DataFrame, *,
                       window: int = DEFAULT_UPDATE_WINDOW, points: int = DEFAULT_POINTS,
                       reps: int = 2000, seed: int = 0):
    """(figure, info): a row per env, a column per metric of EXPLORATION_METRICS, a line per
    loss (gid ``{env}/{loss}/{metric}``): the mean across seeds of each run's per-update
    value (rolling mean over ``window`` updates) on a step grid, with a 95% bootstrap band.
    The caller saves and closes the figure."""
    envs = sorted(runs["env"].unique(), key=env_sort_key)
    losses = sorted(runs["loss"].unique(), key=rl_loss_sort_key)
    metrics = list(EXPLORATION_METRICS)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(envs), len(metrics), squeeze=False,
                                 figsize=(PAPER_WIDTH_IN, 1.6 * len(envs) + 0.8))
        for row, env in enumerate(envs):
            env_up = updates[updates["env"] == env]
            for col, metric in enumerate(metrics):
                ax = axes[row, col]
                # metric names head the columns, env names label the rows (ylabel)
                step_axis(ax, EXPLORATION_METRICS[metric] if row == 0 else "")
                have = (env_up.dropna(subset=[metric]) if metric in env_up
                        else env_up.iloc[:0])
                if not curve_panel(ax, have, runs[runs["env"] == env], losses, points=points,
                                   empty_text="no update logged yet",
                                   curves=lambda sub, grid, metric=metric: smoothed_curves(
                                       sub, {}, grid, window, metric),
                                   reps=reps, seed=seed, gid=f"{env}/{{loss}}/{metric}"):
                    continue
                readable_y(ax, top=1.0 if metric in SHARES else None)
            axes[row, 0].set_ylabel(env)
        for ax in axes[-1, :len(metrics)]:
            ax.set_xlabel("Agent steps")
        loss_legend(fig, losses)
        footnote(fig, f"Mean across seeds ({seeds_per_curve(updates)} per curve) of each "
                  f"run's per-update value, rolling mean over {window} updates; shaded: 95% "
                  "bootstrap CI across seeds. Left: entropy of the policy on the rollout; "
                  "middle: mean probability of the most likely action; right: share of the "
                  "rollout's commonest action (how imbalanced the agent's own data is).")
    return fig, {"panels": [(e, m) for e in envs for m in metrics], "envs": envs,
                 "losses": losses}


def plot_exploration(tables: str | Path, out: str | Path, *,
                     window: int = DEFAULT_UPDATE_WINDOW, points: int = DEFAULT_POINTS,
                     reps: int = 2000, seed: int = 0) -> dict:
    """figures/rl_exploration.png (and .pdf) from rl_updates and rl_final_runs."""
    updates = read_table(tables, "rl_updates")
    runs = read_table(tables, "rl_final_runs")
    if runs.empty:
        raise RunFileError(f"{Path(tables) / 'rl_final_runs'}: no runs to plot")
    fig, info = exploration_figure(updates, runs, window=window, points=points, reps=reps,
                                   seed=seed)
    desc = ("panels: " + ", ".join(f"{e}/{m}" for e, m in info["panels"]) + "; losses: "
            + ", ".join(info["losses"]))
    info["paths"] = save_figure(fig, Path(out), ("png", "pdf"), desc)
    plt.close(fig)
    return info


# ---------------------------------------------------------------------------- aggregate
def aggregate_statistics(runs: pd.DataFrame, *, reps: int = stats.DEFAULT_REPS,
                         seed: int = 0, candidate: str = "scope") -> pd.DataFrame:
    """IQM and mean of normalised final scores (stratified bootstrap CI) per loss, and
    P(candidate > other) per other loss. Runs without a normalised score are left out."""
    scored = runs.dropna(subset=["normalized_final_return"])
    losses = sorted(scored["loss"].unique(), key=rl_loss_sort_key)
    by_loss = {loss: {env: g["normalized_final_return"].to_numpy()
                      for env, g in scored[scored["loss"] == loss].groupby("env")}
               for loss in losses}
    rows = []
    for loss in losses:
        for metric in ("IQM", "Mean"):
            est, low, high = stats.stratified_bootstrap_ci(by_loss[loss], metric, reps=reps,
                                                           seed=seed)
            rows.append({"metric": metric, "loss": loss, "loss_name": rl_loss_name(loss),
                         "other": None, "estimate": est, "ci_low": low, "ci_high": high,
                         "n_tasks": len(by_loss[loss]),
                         "n_runs": int(sum(v.size for v in by_loss[loss].values()))})
    if candidate in by_loss:
        for other in losses:
            if other == candidate:
                continue
            est, low, high, n = stats.probability_of_improvement(
                by_loss[candidate], by_loss[other], reps=reps, seed=seed)
            rows.append(
                {
                    "metric": "P(improvement)",
                    "loss": candidate,
                    "loss_name": rl_loss_name(candidate),
                    "other": other,
                    "estimate": est,
                    "ci_low": low,
                    "ci_high": high,
                    "n_tasks": n,
                    "n_runs": int(
                        sum(
                            by_loss[candidate][t].size + by_loss[other][t].size
                            for t in set(by_loss[candidate]) & set(by_loss[other])
                        )
                    ),
                }
            )
    return pd.DataFrame(rows, columns=["metric", "loss", "loss_name", "other", "estimate",
                                       "ci_low", "ci_high", "n_tasks", "n_runs"])


def _interval_panel(ax, labels, colors, *, est, low, high, title, xlabel, ref=None):
    y = np.arange(len(labels))[::-1]
    for yi, c, e, lo, hi in zip(y, colors, est, low, high):
        ax.hlines(yi, lo, hi, color=c, linewidth=6, alpha=0.45)
        ax.plot([e], [yi], marker="|", color=c, markersize=12, markeredgewidth=2)
    if ref is not None:
        ax.axvline(ref, color="0.5", linestyle="--", linewidth=0.8)
    ax.set_yticks(y, labels)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.25, linewidth=0.5)


def plot_aggregate(tables: str | Path, out: str | Path, *, reps: int = stats.DEFAULT_REPS,
                   seed: int = 0, stats_out: str | Path | None = None,
                   candidate: str = "scope") -> dict:
    """figures/rl_aggregate.png: IQM, mean and P(candidate > X) of normalised final scores."""
    runs = read_table(tables, "rl_final_runs")
    name = rl_loss_name(candidate)
    out = Path(out)
    stats_out = Path(stats_out) if stats_out else out.with_suffix(".csv")
    # Games without reference scores (Gymnasium ids) are min-max normalised over this grid's
    # finished runs of the game, as in the claims table, and named as such.
    finished = runs.dropna(subset=["final_return"]).copy()
    finished["normalized_final_return"], by_grid = grid_normalised(finished)
    unscored = sorted(set(runs["env"]) - set(finished["env"]), key=env_sort_key)
    runs = finished
    table = aggregate_statistics(runs, reps=reps, seed=seed, candidate=candidate)
    scored_envs = sorted(runs.dropna(subset=["normalized_final_return"])["env"].unique(),
                         key=env_sort_key)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(PAPER_WIDTH_IN, 2.3),
                                 gridspec_kw={"width_ratios": [1, 1, 1.1]})
        if table.empty:
            for ax in axes:
                ax.axis("off")
            axes[1].text(0.5, 0.5, "no run has a normalised score yet\n(needs a finished "
                         "episode on an Atari game or StarPilot)", ha="center", va="center")
        else:
            for ax, metric in zip(axes[:2], ("IQM", "Mean")):
                sub = table[table["metric"] == metric]
                _interval_panel(
                    ax,
                    list(sub["loss_name"]),
                    [loss_color(l) for l in sub["loss"]],
                    est=sub["estimate"],
                    low=sub["ci_low"],
                    high=sub["ci_high"],
                    title=metric,
                    xlabel="Normalised score",
                )
            poi = table[table["metric"] == "P(improvement)"]
            if poi.empty:
                axes[2].axis("off")
                axes[2].text(0.5, 0.5, f"{name}, or a loss to compare\nit with, has no runs",
                             ha="center", va="center")
            else:
                _interval_panel(axes[2], [f"vs {rl_loss_name(o)}" for o in poi["other"]],
                                [loss_color(o) for o in poi["other"]], est=poi["estimate"],
                                low=poi["ci_low"], high=poi["ci_high"], title=f"P({name} > X)",
                                xlabel="Probability of improvement", ref=0.5)
                axes[2].set_xlim(-0.02, 1.02)
        note = (f"{len(scored_envs)} task(s): {', '.join(scored_envs) or 'none'}. Atari: "
                "human-normalised; StarPilot: Procgen min-max; MinAtar: random = 0, "
                "AC(lambda) = 1 (the end of its curve in the MinAtar README's 2020 figure: a "
                "yardstick, not a ceiling). 95% stratified-bootstrap CIs.")
        if by_grid:
            note += (f" No reference scores, min-max over this grid's runs: "
                     f"{', '.join(by_grid)}.")
        if unscored:
            note += f" Left out, no finished episode (no final return): {', '.join(unscored)}."
        fig.text(0.5, -0.02, note, ha="center", va="top", fontsize=7, color="0.3", wrap=True)
        fig.tight_layout()
        desc = f"panels: IQM, Mean, P({name} > X); tasks: " + ", ".join(scored_envs)
        paths = save_figure(fig, out, ("png",), desc)
        plt.close(fig)
    atomic.write_csv(stats_out, table)
    return {"paths": paths + [stats_out], "table": table, "tasks": scored_envs,
            "unscored": unscored, "grid_normalised": by_grid}


# ---------------------------------------------------------------------------- sensitivity
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
            for swept, param in lines:
                sub = points[(points["task"] == task) & (points["swept"] == swept)
                             & (points["param"] == param)].sort_values("value")
                if sub.empty:
                    continue
                color = loss_color(swept, kind="ppo" if half == "rl" else "supervised")
                ax.fill_between(sub["value"], sub["low"], sub["high"], color=color,
                                alpha=0.18, linewidth=0)
                ax.plot(sub["value"], sub["y"], color=color, marker="o", markersize=3,
                        label=f"{name(swept)}: {param}")
                ring = sub[sub["registered"]]
                ax.plot(ring["value"], ring["y"], linestyle="none", marker="o",
                        markersize=8, markerfacecolor="none", markeredgecolor=color)
                grid_default = sub[sub["default"] & ~sub["registered"]]
                ax.plot(grid_default["value"], grid_default["y"], linestyle="none",
                        marker="s", markersize=7, markerfacecolor="none",
                        markeredgecolor=color)
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
        handles, labels = axes.flat[len(tasks) - 1].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)),
                       bbox_to_anchor=(0.5, 1.0), frameon=False)
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


# ---------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.analysis.figures",
                                     description="Figure 2, the exploration diagnostics "
                                     "and the aggregate RL figure.")
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("curves", help="Figure 2: training curves, one panel per env")
    p.add_argument("--tables", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help=".png; the .pdf goes beside it")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                   help="rolling-mean window, in episodes")
    p.add_argument("--points", type=int, default=DEFAULT_POINTS, help="step-grid points")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples per band")
    p = sub.add_parser("exploration", help="policy entropy and max-action probability "
                       "against steps, a row per env")
    p.add_argument("--tables", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help=".png; the .pdf goes beside it")
    p.add_argument("--window", type=int, default=DEFAULT_UPDATE_WINDOW,
                   help="rolling-mean window, in updates")
    p.add_argument("--points", type=int, default=DEFAULT_POINTS, help="step-grid points")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples per band")
    p = sub.add_parser("aggregate", help="IQM / mean / probability of improvement")
    p.add_argument("--tables", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--stats-out", type=Path, default=None,
                   help="CSV of the plotted numbers (default: --out with .csv)")
    p.add_argument("--reps", type=int, default=stats.DEFAULT_REPS)
    p.add_argument("--candidate", default="scope",
                   help="the loss of the P(candidate > X) panel (rl.candidate)")
    p = sub.add_parser("sensitivity", help="raw final return (RL) or mean per-class "
                       "precision against each swept loss parameter (claim D)")
    p.add_argument("--tables", required=True, type=Path)
    p.add_argument("--half", choices=tuple(SENSITIVITY), default="rl")
    p.add_argument("--noninferiority-margin", type=float, default=0.5,
                   help="claim D's margin in per-task sd, drawn on the last panel")
    p.add_argument("--out", required=True, type=Path, help=".png; .pdf and .csv beside it")
    add_sweeps_argument(p, "the swept cells to draw", required=True)
    for p in sub.choices.values():
        add_loss_styles_argument(p)
    args = parser.parse_args(argv)
    use_loss_styles(args.loss_styles)
    for name, least in (("window", 1), ("points", 2), ("reps", 1)):
        if getattr(args, name, least) < least:
            parser.error(f"--{name} must be an integer >= {least}, got {getattr(args, name)}")
    try:
        if args.kind == "curves":
            info = plot_training_curves(args.tables, args.out, window=args.window,
                                        points=args.points, reps=args.reps)
            if info["missing"]:
                print("warning: no episode logged yet for " + ", ".join(
                    f"{e}/{l}/seed{s}" for e, l, s in info["missing"]), file=sys.stderr)
            if info["truncated"]:
                print(f"warning: more than {TRUNCATED_SHARE_NOTE:.0%} of episodes cut by the "
                      "time limit in " + ", ".join(f"{e}/{l}/seed{s} ({share:.0%})"
                                                  for e, l, s, share in info["truncated"])
                      + " (named in the figure)", file=sys.stderr)
        elif args.kind == "sensitivity":
            info = plot_sensitivity(args.tables, args.out, args.sweeps.get(args.half) or [],
                                    half=args.half, margin=args.noninferiority_margin)
        elif args.kind == "exploration":
            info = plot_exploration(args.tables, args.out, window=args.window,
                                    points=args.points, reps=args.reps)
        else:
            info = plot_aggregate(args.tables, args.out, reps=args.reps,
                                  stats_out=args.stats_out, candidate=args.candidate)
            if info["unscored"]:
                print("warning: no finished episode in any run of " + ", ".join(info["unscored"])
                      + " (no final return); left out of the aggregate", file=sys.stderr)
    except RunFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in info["paths"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
