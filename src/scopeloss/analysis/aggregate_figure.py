"""The aggregate figure and its numbers: normalised final scores aggregated across games and
seeds (IQM and mean with stratified-bootstrap CIs, the probability of improvement;
``python -m scopeloss.analysis.figures aggregate``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scopeloss import atomic  # noqa: E402

from . import stats  # noqa: E402
from .aggregate import grid_normalised, read_table  # noqa: E402
from .profile_figure import plot_profile  # noqa: E402
from .reference import (env_sort_key, rl_loss_name,
                        rl_loss_sort_key)
from .plotting import (PAPER_WIDTH_IN, STYLE,  # noqa: E402
                       loss_color, save_figure)


def aggregate_statistics(runs: pd.DataFrame, *, reps: int = stats.DEFAULT_REPS,
                         seed: int = 0, candidate: str = "scope") -> pd.DataFrame:
    """IQM, mean and optimality gap (rliable's, at 1) of normalised final scores, each with
    a stratified-bootstrap CI, per loss; P(candidate > other) per other loss. Runs without a
    normalised score are left out."""
    scored = runs.dropna(subset=["normalized_final_return"])
    losses = sorted(scored["loss"].unique(), key=rl_loss_sort_key)
    by_loss = {loss: {env: g["normalized_final_return"].to_numpy()
                      for env, g in scored[scored["loss"] == loss].groupby("env")}
               for loss in losses}
    rows = []
    for loss in losses:
        for metric in ("IQM", "Mean", "Optimality gap"):
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


def _aggregate_panels(axes, table: pd.DataFrame, name: str) -> None:
    """IQM and mean per loss, then P(candidate > X) per other loss; said when empty."""
    if table.empty:
        for ax in axes:
            ax.axis("off")
        axes[1].text(0.5, 0.5, "no run has a normalised score yet\n(needs a finished "
                     "episode on an Atari game or StarPilot)", ha="center", va="center")
        return
    for ax, metric in zip(axes[:2], ("IQM", "Mean")):
        sub = table[table["metric"] == metric]
        _interval_panel(ax, list(sub["loss_name"]), [loss_color(l) for l in sub["loss"]],
                        est=sub["estimate"], low=sub["ci_low"], high=sub["ci_high"],
                        title=metric, xlabel="Normalised score")
    poi = table[table["metric"] == "P(improvement)"]
    if poi.empty:
        axes[2].axis("off")
        axes[2].text(0.5, 0.5, f"{name}, or a loss to compare\nit with, has no runs",
                     ha="center", va="center")
        return
    _interval_panel(axes[2], [f"vs {rl_loss_name(o)}" for o in poi["other"]],
                    [loss_color(o) for o in poi["other"]], est=poi["estimate"],
                    low=poi["ci_low"], high=poi["ci_high"], title=f"P({name} > X)",
                    xlabel="Probability of improvement", ref=0.5)
    axes[2].set_xlim(-0.02, 1.02)


def plot_aggregate(tables: str | Path, out: str | Path, *, reps: int = stats.DEFAULT_REPS,
                   seed: int = 0, stats_out: str | Path | None = None,
                   candidate: str = "scope", profile_out: str | Path | None = None) -> dict:
    """figures/rl_aggregate.png: IQM, mean and P(candidate > X) of normalised final scores
    (the optimality gap too, in the CSV); with ``profile_out``, the performance profiles of
    the same scores beside it (``profile_figure``)."""
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
        _aggregate_panels(axes, table, name)
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
    if profile_out is not None:
        paths += plot_profile(runs, profile_out, reps=reps, seed=seed,
                              note=note.replace("95% stratified-bootstrap CIs",
                                                "95% stratified-bootstrap bands"))
    return {"paths": paths + [stats_out], "table": table, "tasks": scored_envs,
            "unscored": unscored, "grid_normalised": by_grid}
