"""The exploration figure: per environment, policy entropy and mean max-action probability
(``updates.csv``) against agent steps, one line per loss, with seed bands (``python -m
scopeloss.analysis.figures exploration``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


from .aggregate import read_table  # noqa: E402
from .reference import (env_sort_key, rl_loss_sort_key)
from .runs import RunFileError  # noqa: E402
from .plotting import (DEFAULT_POINTS, PAPER_WIDTH_IN, STYLE,  # noqa: E402
                       curve_panel, footnote, loss_legend,
                       save_figure, seeds_per_curve, smoothed_curves, step_axis)


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
