"""Figures from the tidy tables.

``python -m scopeloss.analysis.figures curves --tables results/tables --out figures/rl_training_curves.png``
  The paper's Figure 2: one panel per environment (the paper's order), one line per loss
  (fixed colours), mean across seeds of each run's return smoothed by a rolling mean over
  ``--window`` episodes, with a 95% bootstrap band across seeds; x = agent steps. Writes
  the .png and a .pdf beside it.
``python -m scopeloss.analysis.figures aggregate --tables results/tables --out figures/rl_aggregate.png``
  Normalised final scores (Atari human-normalised, StarPilot min-max) aggregated across
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
from matplotlib import ticker  # noqa: E402

from scopeloss import io  # noqa: E402

from . import stats  # noqa: E402
from .aggregate import read_table  # noqa: E402
from .reference import (RL_LOSS_COLORS, RL_LOSS_DASHES, env_sort_key,  # noqa: E402
                        rl_loss_name, rl_loss_sort_key)
from .runs import RunFileError  # noqa: E402

PAPER_WIDTH_IN = 7.0  # a full text width; fonts are sized for it
DEFAULT_WINDOW = 100
DEFAULT_POINTS = 200
_STYLE = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7,
          "ytick.labelsize": 7, "legend.fontsize": 8, "axes.spines.top": False,
          "axes.spines.right": False}
_FALLBACK_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def loss_color(loss: str, others: Sequence[str] = ()) -> str:
    if loss in RL_LOSS_COLORS:
        return RL_LOSS_COLORS[loss]
    extra = sorted(set(others) - set(RL_LOSS_COLORS))
    return _FALLBACK_COLORS[extra.index(loss) % len(_FALLBACK_COLORS)] if loss in extra \
        else _FALLBACK_COLORS[0]


def save_figure(fig, out: Path, formats: Sequence[str], description: str) -> list[Path]:
    """Write ``out`` in each format (same stem), atomically; the description goes into the
    file's metadata (so a test or a reader can tell what the figure holds)."""
    written = []
    for fmt in formats:
        path = out.with_suffix("." + fmt)
        meta = ({"Title": path.stem, "Description": description} if fmt == "png"
                else {"Title": path.stem, "Subject": description})
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=200, bbox_inches="tight", metadata=meta)
        written.append(path)
    return written


def _steps_formatter(value: float, _pos) -> str:
    if value == 0:
        return "0"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


# ---------------------------------------------------------------------------- curves
def smoothed_curves(episodes: pd.DataFrame, horizons: dict, grid: np.ndarray,
                    window: int) -> np.ndarray:
    """(runs, len(grid)) for one env x loss: each run's return, rolling mean over
    ``window`` episodes, read at each grid step as the value after the last episode that
    finished by then; NaN before its first episode and past its horizon."""
    curves = []
    for seed, run in episodes.groupby("seed", sort=True):
        run = run.sort_values("global_step", kind="stable")
        steps = run["global_step"].to_numpy(dtype=float)
        smooth = run["return"].rolling(window, min_periods=1).mean().to_numpy(dtype=float)
        idx = np.searchsorted(steps, grid, side="right") - 1
        values = np.where(idx >= 0, smooth[np.clip(idx, 0, None)], np.nan)
        values[grid > horizons.get(seed, steps[-1])] = np.nan
        curves.append(values)
    return np.asarray(curves).reshape(len(curves), grid.size)


def _run_horizons(runs: pd.DataFrame) -> dict:
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


def plot_training_curves(tables: str | Path, out: str | Path, *, window: int = DEFAULT_WINDOW,
                         points: int = DEFAULT_POINTS, reps: int = 2000,
                         seed: int = 0) -> dict:
    """Figure 2; returns {'panels': [env, ...], 'paths': [...], 'missing': [...]}."""
    episodes = read_table(tables, "rl_episodes")
    runs = read_table(tables, "rl_final_runs")
    if runs.empty:
        raise RunFileError(f"{Path(tables) / 'rl_final_runs'}: no runs to plot")
    envs = sorted(runs["env"].unique(), key=env_sort_key)
    losses = sorted(runs["loss"].unique(), key=rl_loss_sort_key)
    horizons = _run_horizons(runs)
    missing = runs.loc[runs["episodes"] == 0, ["env", "loss", "seed"]]

    ncols = min(4, len(envs))
    nrows = math.ceil(len(envs) / ncols)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                                 figsize=(PAPER_WIDTH_IN, 1.75 * nrows + 0.7))
        for ax, env in zip(axes.flat, envs):
            env_eps = episodes[episodes["env"] == env]
            ax.set_title(env)
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_steps_formatter))
            ax.xaxis.set_major_locator(ticker.MaxNLocator(4))
            ax.grid(alpha=0.25, linewidth=0.5)
            if env_eps.empty:
                ax.text(0.5, 0.5, "no episode logged yet", ha="center", va="center",
                        transform=ax.transAxes, color="0.4")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            env_runs = runs[runs["env"] == env]
            finished = env_runs.loc[env_runs["status"] == "complete", "total_steps"].dropna()
            end = max(env_eps["global_step"].max(), finished.max() if len(finished) else 0)
            grid = np.linspace(0.0, float(end), points)
            for loss in losses:
                sub = env_eps[env_eps["loss"] == loss]
                if sub.empty:
                    continue
                h = {s: horizons.get((env, loss, s), np.inf) for s in sub["seed"].unique()}
                curves = smoothed_curves(sub, h, grid, window)
                mean, low, high = stats.bootstrap_mean_band(curves, reps=reps, seed=seed)
                color = loss_color(loss, losses)
                ax.plot(grid, mean, color=color, linestyle=RL_LOSS_DASHES.get(loss, "solid"),
                        linewidth=1.3, label=rl_loss_name(loss))
                ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
            ax.set_xlim(0, end if end > 0 else 1)
        for ax in axes.flat[len(envs):]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("Episode return")
        for col in range(ncols):  # x labels under the lowest visible panel of each column
            visible = [axes[r, col] for r in range(nrows) if axes[r, col].get_visible()]
            if visible:
                visible[-1].set_xlabel("Agent steps")
        handles = [plt.Line2D([], [], color=loss_color(l, losses), linewidth=2,
                              linestyle=RL_LOSS_DASHES.get(l, "solid"), label=rl_loss_name(l))
                   for l in losses]
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, 1.0))
        seeds = episodes.groupby(["env", "loss"])["seed"].nunique()
        seeds = seeds if len(seeds) else pd.Series([0])
        n_seeds = (f"{seeds.min()}" if seeds.min() == seeds.max()
                   else f"{seeds.min()}–{seeds.max()}")
        fig.text(0.5, -0.01, f"Mean across seeds ({n_seeds} per curve) of the "
                 f"rolling mean return over {window} episodes; shaded: 95% bootstrap CI "
                 f"across seeds. Atari: 1 agent step = 4 frames.", ha="center", va="top",
                 fontsize=7, color="0.3")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
        desc = "panels: " + ", ".join(envs) + "; losses: " + ", ".join(losses)
        paths = save_figure(fig, Path(out), ("png", "pdf"), desc)
        plt.close(fig)
    return {"panels": list(envs), "losses": list(losses), "paths": paths,
            "missing": [tuple(r) for r in missing.itertuples(index=False)]}


# ---------------------------------------------------------------------------- aggregate
def aggregate_statistics(runs: pd.DataFrame, *, reps: int = stats.DEFAULT_REPS,
                         seed: int = 0, reference: str = "scope") -> pd.DataFrame:
    """IQM and mean of normalised final scores (stratified bootstrap CI) per loss, and
    P(reference > other) per other loss. Runs without a normalised score are left out."""
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
    if reference in by_loss:
        for other in losses:
            if other == reference:
                continue
            est, low, high, n = stats.probability_of_improvement(
                by_loss[reference], by_loss[other], reps=reps, seed=seed)
            rows.append({"metric": "P(improvement)", "loss": reference,
                         "loss_name": rl_loss_name(reference), "other": other,
                         "estimate": est, "ci_low": low, "ci_high": high, "n_tasks": n,
                         "n_runs": int(sum(by_loss[reference][t].size + by_loss[other][t].size
                                           for t in set(by_loss[reference]) & set(by_loss[other])))})
    return pd.DataFrame(rows, columns=["metric", "loss", "loss_name", "other", "estimate",
                                       "ci_low", "ci_high", "n_tasks", "n_runs"])


def _interval_panel(ax, labels, colors, est, low, high, title, xlabel, ref=None):
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
                   seed: int = 0, stats_out: str | Path | None = None) -> dict:
    runs = read_table(tables, "rl_final_runs")
    out = Path(out)
    stats_out = Path(stats_out) if stats_out else out.with_suffix(".csv")
    unscored = sorted(set(runs.loc[runs["normalized_final_return"].isna(), "env"])
                      - set(runs.loc[runs["normalized_final_return"].notna(), "env"]),
                      key=env_sort_key)
    table = aggregate_statistics(runs, reps=reps, seed=seed)
    scored_envs = sorted(runs.dropna(subset=["normalized_final_return"])["env"].unique(),
                         key=env_sort_key)
    with plt.rc_context(_STYLE):
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
                _interval_panel(ax, list(sub["loss_name"]), [loss_color(l) for l in sub["loss"]],
                                sub["estimate"], sub["ci_low"], sub["ci_high"], metric,
                                "Normalised score")
            poi = table[table["metric"] == "P(improvement)"]
            if poi.empty:
                axes[2].axis("off")
                axes[2].text(0.5, 0.5, "Scope, or a loss to compare\nit with, has no runs",
                             ha="center", va="center")
            else:
                _interval_panel(axes[2], [f"vs {rl_loss_name(o)}" for o in poi["other"]],
                                [loss_color(o) for o in poi["other"]], poi["estimate"],
                                poi["ci_low"], poi["ci_high"], "P(Scope > X)",
                                "Probability of improvement", ref=0.5)
                axes[2].set_xlim(-0.02, 1.02)
        note = (f"{len(scored_envs)} task(s): {', '.join(scored_envs) or 'none'}. Atari: "
                "human-normalised; StarPilot: min-max. 95% stratified-bootstrap CIs.")
        if unscored:
            note += f" Not scored (no reference): {', '.join(unscored)}."
        fig.text(0.5, -0.02, note, ha="center", va="top", fontsize=7, color="0.3", wrap=True)
        fig.tight_layout()
        desc = "panels: IQM, Mean, P(Scope > X); tasks: " + ", ".join(scored_envs)
        paths = save_figure(fig, out, ("png",), desc)
        plt.close(fig)
    io.write_csv(stats_out, table)
    return {"paths": paths + [stats_out], "table": table, "tasks": scored_envs,
            "unscored": unscored}


# ---------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.analysis.figures",
                                     description="Figure 2 and the aggregate RL figure.")
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("curves", help="Figure 2: training curves, one panel per env")
    p.add_argument("--tables", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help=".png; the .pdf goes beside it")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                   help="rolling-mean window, in episodes")
    p.add_argument("--points", type=int, default=DEFAULT_POINTS, help="step-grid points")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples per band")
    p = sub.add_parser("aggregate", help="IQM / mean / probability of improvement")
    p.add_argument("--tables", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--stats-out", type=Path, default=None,
                   help="CSV of the plotted numbers (default: --out with .csv)")
    p.add_argument("--reps", type=int, default=stats.DEFAULT_REPS)
    args = parser.parse_args(argv)
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
        else:
            info = plot_aggregate(args.tables, args.out, reps=args.reps,
                                  stats_out=args.stats_out)
            if info["unscored"]:
                print("warning: no reference scores for " + ", ".join(info["unscored"])
                      + "; left out of the aggregate", file=sys.stderr)
    except RunFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in info["paths"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
