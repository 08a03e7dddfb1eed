"""Performance profiles of the RL losses (Agarwal et al. 2021, rliable's score distributions):
for each normalised score tau, the fraction of all runs (every game, every seed) scoring
above it, with a 95% stratified-bootstrap band (seeds resampled within each game). A curve
above another over the whole range is a loss whose runs do better at every level, not only
on average. Drawn beside the aggregate figure from the same normalised final scores
(``aggregate_figure.plot_aggregate``); the numbers go to a CSV beside it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scopeloss import atomic  # noqa: E402

from . import stats  # noqa: E402
from .plotting import PAPER_WIDTH_IN, STYLE, loss_color, save_figure  # noqa: E402
from .reference import rl_loss_name, rl_loss_sort_key  # noqa: E402

TAU_POINTS = 101
COLUMNS = ["loss", "loss_name", "tau", "fraction", "ci_low", "ci_high", "n_tasks", "n_runs"]


def taus_for(scores: np.ndarray) -> np.ndarray:
    """Thresholds from 0 (or the lowest score) to the highest score (at least 1)."""
    finite = scores[np.isfinite(scores)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = max(1.0, float(finite.max())) if finite.size else 1.0
    return np.linspace(low, high, TAU_POINTS)


def profile_table(runs: pd.DataFrame, *, reps: int = stats.DEFAULT_REPS,
                  seed: int = 0) -> pd.DataFrame:
    """One row per loss and tau: the fraction of runs above tau and its CI."""
    scored = runs.dropna(subset=["normalized_final_return"])
    if scored.empty:
        return pd.DataFrame(columns=COLUMNS)
    taus = taus_for(scored["normalized_final_return"].to_numpy(dtype=float))
    frames = []
    for loss in sorted(scored["loss"].unique(), key=rl_loss_sort_key):
        mine = scored[scored["loss"] == loss]
        by_task = {env: g["normalized_final_return"].to_numpy() for env, g in mine.groupby("env")}
        point, low, high = stats.score_distribution(by_task, taus, reps=reps, seed=seed)
        frames.append(pd.DataFrame({"loss": loss, "loss_name": rl_loss_name(loss), "tau": taus,
                                    "fraction": point, "ci_low": low, "ci_high": high,
                                    "n_tasks": len(by_task), "n_runs": len(mine)}))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def plot_profile(runs: pd.DataFrame, out: str | Path, *, note: str,
                 reps: int = stats.DEFAULT_REPS, seed: int = 0) -> list[Path]:
    """figures/rl_performance_profile.png and its .csv, from normalised final scores."""
    out = Path(out)
    table = profile_table(runs, reps=reps, seed=seed)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(PAPER_WIDTH_IN * 0.55, 2.6))
        for loss, curve in table.groupby("loss", sort=False):
            color = loss_color(loss)
            ax.fill_between(curve["tau"], curve["ci_low"], curve["ci_high"], color=color,
                            alpha=0.2, linewidth=0)
            ax.plot(curve["tau"], curve["fraction"], color=color,
                    label=curve["loss_name"].iloc[0])
        if table.empty:
            ax.text(0.5, 0.5, "no run has a normalised score yet", ha="center", va="center",
                    transform=ax.transAxes)
        else:
            ax.legend(frameon=False, fontsize=7)
        ax.set_xlabel(r"Normalised score $\tau$")
        ax.set_ylabel(r"Fraction of runs with score $> \tau$")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.25, linewidth=0.5)
        fig.text(0.5, -0.02, note, ha="center", va="top", fontsize=6, color="0.3", wrap=True)
        fig.tight_layout()
        losses = ", ".join(dict.fromkeys(table["loss_name"]))
        paths = save_figure(fig, out, ("png",), f"performance profiles: {losses or 'none'}")
        plt.close(fig)
    atomic.write_csv(out.with_suffix(".csv"), table)
    return paths + [out.with_suffix(".csv")]
