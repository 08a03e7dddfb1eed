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
  that Scope improves on each other loss. Its numbers go to a .csv beside the figure (with
  the optimality gap); ``--profile-out P.png`` adds the performance profiles (rliable's
  score distributions) of the same scores, and their .csv.
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


from . import stats  # noqa: E402
from .aggregate import read_table  # noqa: E402
from .reference import (add_loss_styles_argument, add_sweeps_argument, env_sort_key, rl_loss_name,
                        rl_loss_sort_key, use_loss_styles)
from .runs import RESUME_FLAG, RunFileError  # noqa: E402
from .plotting import (DEFAULT_POINTS, DEFAULT_WINDOW, PAPER_WIDTH_IN, STYLE,  # noqa: E402
                       TRUNCATED_SHARE_NOTE, curve_panel, footnote, loss_legend,
                       run_horizons, save_figure, seeds_per_curve, smoothed_curves, step_axis,
                       truncated_runs)
from .aggregate_figure import plot_aggregate  # noqa: E402
from .exploration_figure import DEFAULT_UPDATE_WINDOW, plot_exploration  # noqa: E402
from .sensitivity_figure import SENSITIVITY, plot_sensitivity  # noqa: E402


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
            _truncation_note(ax, cut[cut["env"] == env])
        _label_axes(axes, len(envs))
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


def _truncation_note(ax, env_cut: pd.DataFrame) -> None:
    """Name in the panel each run with many episodes cut by the time limit."""
    if len(env_cut):
        ax.text(0.02, 0.98, "time-limit truncations:\n" + "\n".join(
            f"{rl_loss_name(r.loss)} s{r.seed}: {r.truncated_share:.0%}"
            for r in env_cut.itertuples(index=False)), transform=ax.transAxes,
            ha="left", va="top", fontsize=6, color="#b00000", gid="truncated-note")


def _label_axes(axes, panels: int) -> None:
    """Hide the unused panels; y labels on the left, x labels under the lowest visible
    panel of each column."""
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("Episode return")
    nrows, ncols = axes.shape
    for col in range(ncols):
        visible = [axes[r, col] for r in range(nrows) if axes[r, col].get_visible()]
        if visible:
            visible[-1].set_xlabel("Agent steps")


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.analysis.figures",
                                     description="Figure 2, the exploration diagnostics "
                                     "and the aggregate RL figure.")
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind, help_text, window, unit in (
            ("curves", "Figure 2: training curves, one panel per env", DEFAULT_WINDOW,
             "episodes"),
            ("exploration", "policy entropy and max-action probability against steps, a "
             "row per env", DEFAULT_UPDATE_WINDOW, "updates")):
        p = sub.add_parser(kind, help=help_text)
        p.add_argument("--tables", required=True, type=Path)
        p.add_argument("--out", required=True, type=Path, help=".png; the .pdf goes beside it")
        p.add_argument("--window", type=int, default=window,
                       help=f"rolling-mean window, in {unit}")
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
    p.add_argument("--profile-out", type=Path, default=None,
                   help="also draw the performance profiles here (.png; .csv beside it)")
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
    return parser


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def _draw(args: argparse.Namespace) -> dict:
    """The figure ``args.kind`` names, drawn; its info (paths, and what it left out)."""
    if args.kind == "curves":
        info = plot_training_curves(args.tables, args.out, window=args.window,
                                    points=args.points, reps=args.reps)
        if info["missing"]:
            _warn("no episode logged yet for " + ", ".join(
                f"{e}/{l}/seed{s}" for e, l, s in info["missing"]))
        if info["truncated"]:
            _warn(f"more than {TRUNCATED_SHARE_NOTE:.0%} of episodes cut by the time limit in "
                  + ", ".join(f"{e}/{l}/seed{s} ({share:.0%})"
                              for e, l, s, share in info["truncated"]) + " (named in the figure)")
        return info
    if args.kind == "sensitivity":
        return plot_sensitivity(args.tables, args.out, args.sweeps.get(args.half) or [],
                                half=args.half, margin=args.noninferiority_margin)
    if args.kind == "exploration":
        return plot_exploration(args.tables, args.out, window=args.window,
                                points=args.points, reps=args.reps)
    info = plot_aggregate(args.tables, args.out, reps=args.reps, stats_out=args.stats_out,
                          candidate=args.candidate, profile_out=args.profile_out)
    if info["unscored"]:
        _warn("no finished episode in any run of " + ", ".join(info["unscored"])
              + " (no final return); left out of the aggregate")
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    use_loss_styles(args.loss_styles)
    for name, least in (("window", 1), ("points", 2), ("reps", 1)):
        if getattr(args, name, least) < least:
            parser.error(f"--{name} must be an integer >= {least}, got {getattr(args, name)}")
    try:
        info = _draw(args)
    except RunFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in info["paths"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
