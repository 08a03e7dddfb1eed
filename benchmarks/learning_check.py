"""Learning curves of two sets of runs side by side (e.g. a trainer before and after a
speed change): each run directory's episodes.csv, rolling mean over 100 episodes on a step
grid, mean and range across seeds; writes a .png and a small .csv of the final returns.

    python benchmarks/learning_check.py --out docs/results/minatar_learning_check \
        before=/tmp/learn/before after=/tmp/learn/after
(each LABEL=DIR holds seedN/episodes.csv)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def curve(episodes: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    smooth = episodes["return"].rolling(100, min_periods=1).mean().to_numpy()
    idx = np.searchsorted(episodes["global_step"].to_numpy(), grid, side="right") - 1
    return np.where(idx >= 0, smooth[np.clip(idx, 0, None)], np.nan)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sets", nargs="+", metavar="LABEL=DIR")
    ap.add_argument("--out", required=True, type=Path, help="path without suffix")
    args = ap.parse_args(argv)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    rows = []
    for item in args.sets:
        label, folder = item.split("=", 1)
        runs = sorted(Path(folder).glob("seed*/episodes.csv"))
        frames = [pd.read_csv(f) for f in runs]
        end = min(int(f["global_step"].max()) for f in frames)
        start = max(int(f["global_step"].min()) for f in frames)
        grid = np.linspace(start, end, 200)
        curves = np.stack([curve(f, grid) for f in frames])
        line, = ax.plot(grid, np.nanmean(curves, 0), label=f"{label} ({len(frames)} seeds)")
        ax.fill_between(grid, np.nanmin(curves, 0), np.nanmax(curves, 0), alpha=0.2,
                        color=line.get_color())
        for f, path in zip(frames, runs):
            rows.append({"set": label, "run": path.parent.name,
                         "final_return_mean_100": float(f["return"].tail(100).mean()),
                         "episodes": len(f)})
    ax.set_xlabel("Agent steps")
    ax.set_ylabel("Episode return (rolling mean of 100)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    table = pd.DataFrame(rows)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    print(table.groupby("set")["final_return_mean_100"].agg(["mean", "std", "count"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
