"""What every figure shares: matplotlib on the Agg backend, the paper-width style, fixed loss
colours, smoothed curves on a common step grid with bootstrap bands, axes and legends, and
saving a figure atomically as .png and .pdf."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.typing import RcKeyType  # noqa: E402

from scopeloss import atomic  # noqa: E402

from . import stats  # noqa: E402
from .reference import loss_style, rl_loss_name  # noqa: E402


PAPER_WIDTH_IN = 7.0  # a full text width; fonts are sized for it
DEFAULT_WINDOW = 100
DEFAULT_POINTS = 200
STYLE: dict[RcKeyType, Any] = {
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 8, "axes.spines.top": False,
    "axes.spines.right": False}
_UNKNOWN_COLORS = ["#7f7f7f", "#bcbd22", "#17becf", "#e377c2"]


def loss_color(loss: str, others: Sequence[str] = (), kind: str = "ppo") -> str:
    """The loss's registered colour (scopeloss.registry); a loss the registry does not know
    (a run of a module not loaded here) gets a grey-ish one, distinct among ``others``."""
    color = loss_style(kind, loss)["color"]
    if color is not None:
        return color
    extra = sorted(o for o in set(others) if loss_style(kind, o)["color"] is None)
    return _UNKNOWN_COLORS[extra.index(loss) % len(_UNKNOWN_COLORS)] if loss in extra \
        else _UNKNOWN_COLORS[0]


def loss_dash(loss: str, kind: str = "ppo"):
    return loss_style(kind, loss)["dash"] or "solid"


def save_figure(fig, out: Path, formats: Sequence[str], description: str) -> list[Path]:
    """Write ``out`` in each format (same stem), atomically; the description goes into the
    file's metadata (so a test or a reader can tell what the figure holds)."""
    written = []
    for fmt in formats:
        path = out.with_suffix("." + fmt)
        meta = ({"Title": path.stem, "Description": description} if fmt == "png"
                else {"Title": path.stem, "Subject": description})
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=200, bbox_inches="tight", metadata=meta)
        written.append(path)
    return written


def steps_formatter(value: float, _pos) -> str:
    if value == 0:
        return "0"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


# ---------------------------------------------------------------------------- curves
def smoothed_curves(frame: pd.DataFrame, horizons: dict, grid: np.ndarray,
                    window: int, column: str = "return") -> np.ndarray:
    """(runs, len(grid)) for one env x loss: each run's ``column`` (per episode, or per
    update), rolling mean over ``window`` rows, read at each grid step as the value after
    the last row logged by then; NaN before its first row and past its horizon (a seed
    missing from ``horizons`` ends at its last row)."""
    curves = []
    for seed, run in frame.groupby("seed", sort=True):
        run = run.dropna(subset=[column]).sort_values("global_step", kind="stable")
        if run.empty:
            curves.append(np.full(grid.size, np.nan))
            continue
        steps = run["global_step"].to_numpy(dtype=float)
        smooth = run[column].rolling(window, min_periods=1).mean().to_numpy(dtype=float)
        idx = np.searchsorted(steps, grid, side="right") - 1
        values = np.where(idx >= 0, smooth[np.clip(idx, 0, None)], np.nan)
        values[grid > horizons.get(seed, steps[-1])] = np.nan
        curves.append(values)
    return np.asarray(curves).reshape(len(curves), grid.size)


def run_horizons(runs: pd.DataFrame) -> dict:
    """(env, loss, seed) -> last step a run's curve may be drawn to: its configured
    total_steps once finished, else its last logged episode (it may still be running)."""
    horizons = {}
    for row in runs.itertuples(index=False):
        last = float(row.last_episode_step) if pd.notna(row.last_episode_step) else -np.inf
        total = getattr(row, "total_steps", np.nan)
        if row.status == "complete" and pd.notna(total):
            last = max(last, float(total))  # a rollout may end a little past total_steps
        horizons[(row.env, row.loss, row.seed)] = last
    return horizons


# Shared by the step-axis figures (training curves, exploration diagnostics).
def step_axis(ax, title: str | None = None) -> None:
    if title is not None:
        ax.set_title(title)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(steps_formatter))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(4))
    ax.grid(alpha=0.25, linewidth=0.5)


def empty_panel(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_band(ax, grid: np.ndarray, curves: np.ndarray, loss: str, losses: Sequence[str], *,
              reps: int, seed: int, gid: str | None = None):
    """The mean across runs of ``curves`` (runs, points) as the loss's line, and its 95%
    bootstrap band across runs; returns the line."""
    mean, low, high = stats.bootstrap_mean_band(curves, reps=reps, seed=seed)
    color = loss_color(loss, losses)
    (line,) = ax.plot(grid, mean, color=color, linestyle=loss_dash(loss),
                      linewidth=1.3, label=rl_loss_name(loss), gid=gid)
    ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
    return line


def loss_legend(fig, losses: Sequence[str]) -> None:
    handles = [plt.Line2D([], [], color=loss_color(l, losses), linewidth=2,
                          linestyle=loss_dash(l), label=rl_loss_name(l))
               for l in losses]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, 1.0))


def seeds_per_curve(frame: pd.DataFrame) -> str:
    seeds = frame.groupby(["env", "loss"])["seed"].nunique()
    seeds = seeds if len(seeds) else pd.Series([0])
    return f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"


def footnote(fig, text: str) -> None:
    fig.text(0.5, -0.01, text, ha="center", va="top", fontsize=7, color="0.3", wrap=True)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))


def step_grid(env_rows: pd.DataFrame, env_runs: pd.DataFrame, points: int) -> np.ndarray:
    finished = env_runs.loc[env_runs["status"] == "complete", "total_steps"].dropna() \
        if "total_steps" in env_runs else pd.Series(dtype=float)
    end = max(float(env_rows["global_step"].max()), finished.max() if len(finished) else 0)
    return np.linspace(0.0, end, points)


TRUNCATED_SHARE_NOTE = 0.05  # runs above this share of time-limit truncations are named


def truncated_runs(runs: pd.DataFrame, threshold: float = TRUNCATED_SHARE_NOTE) -> pd.DataFrame:
    """Runs whose share of episodes cut by the env's time limit is above ``threshold``."""
    if "truncated_share" not in runs:
        return runs.iloc[:0]
    return runs[runs["truncated_share"] > threshold]


def curve_panel(ax, frame: pd.DataFrame, env_runs: pd.DataFrame, losses: Sequence[str],
                *, points: int, empty_text: str, curves, reps: int, seed: int, gid: str) -> bool:
    """One panel of per-loss bands: ``curves(rows of one loss, step grid)`` gives the (seeds,
    grid) curves of a loss. ``gid`` names the lines ("{loss}" is filled in, else "/loss" is
    appended). False (and a note in the panel) when ``frame`` is empty."""
    if frame.empty:
        empty_panel(ax, empty_text)
        return False
    grid = step_grid(frame, env_runs, points)
    for loss in losses:
        sub = frame[frame["loss"] == loss]
        if not sub.empty:
            name = gid.format(loss=loss) if "{loss}" in gid else f"{gid}/{loss}"
            plot_band(ax, grid, curves(sub, grid), loss, losses, reps=reps, seed=seed, gid=name)
    ax.set_xlim(0, grid[-1] if grid[-1] > 0 else 1)
    return True
