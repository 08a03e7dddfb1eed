"""The precision-by-class-frequency figure: per-class test precision against the class's
training count, a panel per dataset x experiment, one colour per loss. Experiments beyond
the paper get a row of "lift" panels, the per-class precision of each minus that of the
paper experiment it extends (``reference.EXTENDS``), so one sees whether re-sampling or CUDA
lift the tail. Drawn by ``python -m scopeloss.analysis.tables ... --figure PATH``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402

from .aggregate import read_table  # noqa: E402
from .plotting import PAPER_WIDTH_IN, STYLE, save_figure  # noqa: E402
from .reference import (EXTENDS, PAPER_EXPERIMENTS, cls_loss_name,  # noqa: E402
                        cls_loss_sort_key, experiment_sort_key, loss_style)
from .runs import RunFileError  # noqa: E402


def _binned(counts: np.ndarray, precision: np.ndarray, max_bins: int = 12):
    """(x, y): mean precision per class-frequency bin (exact counts when few distinct)."""
    frame = pd.DataFrame({"count": counts, "precision": precision})
    if frame["count"].nunique() <= max_bins:
        g = frame.groupby("count")["precision"].mean()
        return g.index.to_numpy(dtype=float), g.to_numpy()
    edges = np.unique(np.quantile(counts, np.linspace(0, 1, max_bins + 1)))
    frame["bin"] = pd.cut(frame["count"], edges, include_lowest=True)
    g = frame.groupby("bin", observed=True).agg(x=("count", "median"), y=("precision", "mean"))
    return g["x"].to_numpy(dtype=float), g["y"].to_numpy()


def _class_precision(sub: pd.DataFrame, loss: str) -> pd.DataFrame:
    """Per class of one loss: training count and precision averaged over seeds."""
    return (sub[sub["loss"] == loss].groupby("class")
            .agg(count=("train_count", "first"), precision=("precision", "mean")))


def _log_x(ax, counts: pd.Series) -> None:
    if counts.max() >= 5 * max(counts.min(), 1):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _dots_and_bins(ax, count: pd.Series, value: pd.Series, loss: str) -> None:
    """One loss's classes as dots, and their per-frequency-bin means as a line."""
    color = loss_style("supervised", loss)["color"] or "0.4"
    few = len(count) <= 50  # small datasets: each class is worth seeing
    ax.scatter(count, value, s=12 if few else 5, color=color, alpha=0.5 if few else 0.25,
               linewidths=0)
    x, y = _binned(count.to_numpy(), value.to_numpy())
    ax.plot(x, y, color=color, linewidth=1.4, marker="o", markersize=2.5,
            label=cls_loss_name(loss))


def _precision_panel(ax, per_class: pd.DataFrame, dataset: str, exp: str, losses) -> None:
    sub = per_class[(per_class["dataset"] == dataset) & (per_class["experiment"] == exp)]
    for loss in losses:
        cls = _class_precision(sub, loss)
        if not cls.empty:
            _dots_and_bins(ax, cls["count"], cls["precision"], loss)
    _log_x(ax, sub["train_count"])
    ax.set_title(f"{dataset}, {exp}" + ("" if exp in PAPER_EXPERIMENTS else "*"))
    ax.set_xlabel("Training images of the class")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.25, linewidth=0.5)
    if ax.get_subplotspec().colspan.start == 0:
        ax.set_ylabel("Test precision of the class")
    else:
        ax.tick_params(labelleft=False)


def _lift_panel(ax, per_class: pd.DataFrame, dataset: str, exp: str, base: str, losses
                ) -> float | None:
    """Per-class precision of ``exp`` minus that of ``base``; the largest |lift| drawn."""
    def pick(e):
        return per_class[(per_class["dataset"] == dataset) & (per_class["experiment"] == e)]

    new, old = pick(exp), pick(base)
    largest = None
    for loss in losses:
        a, b = _class_precision(new, loss), _class_precision(old, loss)
        both = a.join(b["precision"].rename("base"), how="inner")
        if both.empty:
            continue
        lift = both["precision"] - both["base"]
        largest = max(largest or 0.0, float(lift.abs().max()))
        _dots_and_bins(ax, both["count"], lift, loss)
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    _log_x(ax, new["train_count"])
    ax.set_title(f"{dataset}, {exp}*\nminus {base}")
    ax.set_xlabel("Training images of the class")
    if ax.get_subplotspec().colspan.start == 0:
        ax.set_ylabel("Precision gain per class")
    ax.grid(alpha=0.25, linewidth=0.5)
    return largest


def plot_precision_by_frequency(tables: str | Path, out: str | Path) -> dict:
    """Per-class precision (mean over seeds) against training count, a panel per dataset x
    experiment, one colour per loss; the lines are per-frequency-bin means. When an
    experiment beyond the paper and the one it extends (``EXTENDS``) are both present, a
    further row of "lift" panels shows the difference of their per-class precisions."""
    per_class = read_table(tables, "classification_per_class")
    if per_class.empty:
        raise RunFileError(f"{Path(tables) / 'classification_per_class'}: no finished "
                           "classification run to plot")
    combos = (per_class[["dataset", "experiment"]].drop_duplicates()
              .sort_values(["dataset", "experiment"],
                           key=lambda s: s.map(experiment_sort_key) if s.name == "experiment" else s))
    combos = list(combos.itertuples(index=False, name=None))
    lifts = [(d, x, EXTENDS[x]) for d, x in combos
             if x in EXTENDS and (d, EXTENDS[x]) in combos]
    losses = sorted(per_class["loss"].unique(), key=cls_loss_sort_key)
    ncols = min(4, max(len(combos), len(lifts)))
    rows_top, rows_lift = -(-len(combos) // ncols), -(-len(lifts) // ncols) if lifts else 0
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows_top + rows_lift, ncols, squeeze=False,
                                 figsize=(min(PAPER_WIDTH_IN, 3.5 * ncols) if ncols > 1 else 3.6,
                                          2.8 * (rows_top + rows_lift)))
        flat_top = [axes[i // ncols, i % ncols] for i in range(len(combos))]
        flat_lift = [axes[rows_top + i // ncols, i % ncols] for i in range(len(lifts))]
        used = set(map(id, flat_top + flat_lift))
        for ax in axes.flat:
            if id(ax) not in used:
                ax.set_visible(False)
        for ax, (dataset, exp) in zip(flat_top, combos):
            _precision_panel(ax, per_class, dataset, exp, losses)
        drawn = [_lift_panel(ax, per_class, dataset, exp, base, losses)
                 for ax, (dataset, exp, base) in zip(flat_lift, lifts)]
        lift_values = [v for v in drawn if v is not None]
        if lift_values:
            top = max(0.05, float(np.nanmax(lift_values))) * 1.08
            for ax in flat_lift:
                ax.set_ylim(-top, top)
        handles, labels = flat_top[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6),
                   frameon=False, bbox_to_anchor=(0.5, 1.0))
        note = "Dots: classes (precision averaged over seeds); lines: mean per class-frequency bin."
        if any(x not in PAPER_EXPERIMENTS for _, x in combos):
            note += " *: beyond the paper."
        if lifts:
            note += ("\nLower row: per-class precision minus that of the paper setting the "
                     "experiment extends (> 0: lifted).")
        fig.text(0.5, -0.01, note, ha="center", va="top", fontsize=7, color="0.3")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
        desc = "panels: " + ", ".join(f"{d}/{e}" for d, e in combos)
        if lifts:
            desc += "; lift: " + ", ".join(f"{d}/{e}-{b}" for d, e, b in lifts)
        paths = save_figure(fig, Path(out), ("png",), desc)
        plt.close(fig)
    return {"paths": paths, "panels": combos, "lifts": lifts, "losses": losses}
