"""The paper's Tables 1-2 (per-class precision) and the precision-by-class-frequency figure.

``python -m scopeloss.analysis.tables --tables results/tables --out-dir results/tables --figure figures/precision_by_class_frequency.png``
writes ``precision_{experiment}.md``, ``.tex`` and ``.csv`` for every experiment present:
rows the mean and the standard deviation (over classes, ddof 0) of per-class precision,
a column per loss in the paper's order (PEL, SL, FL, CEL, then the extra baselines); a
cell is one run's value, or mean ± std (ddof 1) across seeds when there are several. For
Caltech-256 the paper's reported values are printed in rows marked "(paper)".

Experiments beyond the paper (``plain_balanced``: Table 1's setting with class-balanced
re-sampling; ``augmented_cuda``: Table 2's with the CUDA augmentation curriculum; any other
name) get tables of their own, headed "(beyond the paper)", without paper rows. The figure
adds a row of "lift" panels, the per-class precision of each such experiment minus that of
the paper experiment it extends, so one sees whether re-sampling or CUDA lift the tail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402

from scopeloss import io  # noqa: E402

from .aggregate import read_table, sort_in_order  # noqa: E402
from .plotting import PAPER_WIDTH_IN, STYLE, save_figure  # noqa: E402
from .reference import (PAPER_DATASET, PAPER_PRECISION,  # noqa: E402
                        add_loss_styles_argument, cls_loss_name, cls_loss_sort_key, loss_style,
                        use_loss_styles)
from .runs import COMPLETE, RunFileError  # noqa: E402

STATISTICS = {"mean": "Mean precision", "std": "Std of precision"}
EXPERIMENT_ORDER = ("plain", "augmented", "plain_balanced", "augmented_cuda")
PAPER_EXPERIMENTS = ("plain", "augmented")
# A beyond-the-paper experiment -> the paper experiment it extends (the figure's lift panels).
EXTENDS = {"plain_balanced": "plain", "augmented_cuda": "augmented"}
TIDY_COLUMNS = ["dataset", "experiment", "statistic", "source", "loss", "loss_name", "value",
                "spread", "n_seeds", "cell"]


def experiment_sort_key(exp: str) -> tuple[int, str]:
    return ((EXPERIMENT_ORDER.index(exp), "") if exp in EXPERIMENT_ORDER
            else (len(EXPERIMENT_ORDER), exp))


def experiment_title(exp: str) -> str:
    return exp if exp in PAPER_EXPERIMENTS else f"{exp} (beyond the paper)"


def format_cell(value: float, spread: float, digits: int = 4, pm: str = "±",
                missing: str = "–") -> str:
    if pd.isna(value):
        return missing
    return f"{value:.{digits}f}" if pd.isna(spread) else f"{value:.{digits}f} {pm} {spread:.{digits}f}"


def per_run_precision(per_class: pd.DataFrame) -> pd.DataFrame:
    """Per run: the mean and population std (ddof 0) of its per-class precision."""
    keys = ["dataset", "experiment", "loss", "seed"]
    grouped = per_class.groupby(keys, sort=False)["precision"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0)}).reset_index()


def precision_table(per_class: pd.DataFrame) -> pd.DataFrame:
    """Tidy Tables 1-2: one row per dataset x experiment x statistic x source x loss."""
    runs = per_run_precision(per_class)
    rows = []
    for (dataset, exp, loss), group in runs.groupby(["dataset", "experiment", "loss"],
                                                    sort=False):
        for stat in STATISTICS:
            values = group[stat].to_numpy(dtype=float)
            value = float(values.mean())
            spread = float(values.std(ddof=1)) if values.size > 1 else np.nan
            rows.append({"dataset": dataset, "experiment": exp, "statistic": stat,
                         "source": "reproduced", "loss": loss, "value": value,
                         "spread": spread, "n_seeds": int(values.size)})
    for (dataset, exp) in runs[["dataset", "experiment"]].drop_duplicates().itertuples(index=False):
        if dataset != PAPER_DATASET or exp not in PAPER_PRECISION:
            continue
        for stat, by_loss in PAPER_PRECISION[exp].items():
            for loss, value in by_loss.items():
                rows.append({"dataset": dataset, "experiment": exp, "statistic": stat,
                             "source": "paper", "loss": loss, "value": value,
                             "spread": np.nan, "n_seeds": 1})
    table = pd.DataFrame(rows, columns=[c for c in TIDY_COLUMNS if c not in ("loss_name", "cell")])
    table["loss_name"] = table["loss"].map(cls_loss_name)
    table["cell"] = [format_cell(v, s) for v, s in zip(table["value"], table["spread"])]
    # dataset by name; the rest in the paper's orders
    return sort_in_order(table[TIDY_COLUMNS], {
        "dataset": str, "experiment": experiment_sort_key,
        "statistic": list(STATISTICS).index, "source": ["reproduced", "paper"].index,
        "loss": cls_loss_sort_key})


def wide_table(tidy: pd.DataFrame, *, latex: bool = False, candidate: str = "scope"
               ) -> pd.DataFrame:
    """One dataset x experiment as the paper prints it: rows statistics, columns losses (the
    paper's four in its order, then the candidate, then the others in the registry's order)."""
    paper = list(PAPER_PRECISION["plain"]["mean"])

    def column(loss: str):
        group = 0 if loss in paper else 1 if loss == candidate else 2
        return group, cls_loss_sort_key(loss)

    losses = sorted(tidy["loss"].unique(), key=column)
    dash = "--" if latex else "–"
    rows = {}
    for stat, label in STATISTICS.items():
        for source in ("reproduced", "paper"):
            sub = tidy[(tidy["statistic"] == stat) & (tidy["source"] == source)]
            if sub.empty:
                continue
            cells = {cls_loss_name(l): dash for l in losses}
            for r in sub.itertuples(index=False):
                cells[cls_loss_name(r.loss)] = (format_cell(r.value, r.spread, pm=r"$\pm$", missing=dash)
                                                if latex else r.cell)
            rows[label + (" (paper)" if source == "paper" else "")] = cells
    seeds = tidy[(tidy["source"] == "reproduced") & (tidy["statistic"] == "mean")]
    cells = {cls_loss_name(l): dash for l in losses}
    cells.update({cls_loss_name(r.loss): str(r.n_seeds) for r in seeds.itertuples(index=False)})
    rows["Seeds"] = cells
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "Precision metric"
    return frame


def _markdown(frame: pd.DataFrame) -> str:
    header = [frame.index.name] + list(frame.columns)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * len(frame.columns)) + "|"]
    lines += ["| " + " | ".join([str(i)] + list(r)) + " |" for i, r in frame.iterrows()]
    return "\n".join(lines)


def _latex(frame: pd.DataFrame, caption: str) -> str:
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%")  # noqa: E731
    cols = "l" + "r" * len(frame.columns)
    lines = [f"% {caption}", r"\begin{tabular}{" + cols + "}", r"\toprule",
             " & ".join([esc(frame.index.name)] + [esc(c) for c in frame.columns]) + r" \\",
             r"\midrule"]
    for label, row in frame.iterrows():
        if label == "Seeds":
            lines.append(r"\midrule")
        lines.append(" & ".join([esc(label)] + [esc(v) if "$" not in v else v for v in row])
                     + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def _caption(dataset: str, experiment: str) -> str:
    which = {"plain": "no augmentation (the setting of the paper's Table 1)",
             "augmented": "with augmentation (the setting of the paper's Table 2)",
             "plain_balanced": "beyond the paper: the setting of Table 1 with class-balanced "
                               "re-sampling (every class equally likely per draw)",
             "augmented_cuda": "beyond the paper: the setting of Table 2 with the CUDA "
                               "augmentation curriculum (Ahn, Ko, Yun, ICLR 2023)",
             }.get(experiment, f"{experiment} (beyond the paper; no paper values)")
    return (f"Per-class precision on {dataset}, {which}: mean and standard deviation over "
            f"classes; mean ± std across seeds where there are several.")


def write_precision_tables(tables: str | Path, out_dir: str | Path, candidate: str = "scope"
                           ) -> tuple[list[Path], list[str]]:
    per_class = read_table(tables, "classification_per_class")
    summary = read_table(tables, "classification_summary")
    notes = [f"{r.dataset}/{r.experiment}/{r.loss}/seed{r.seed}: {r.status}, left out"
             for r in summary.itertuples(index=False) if r.status != COMPLETE]
    experiments = sorted(set(summary["experiment"]) | set(per_class["experiment"]),
                         key=experiment_sort_key)
    tidy = precision_table(per_class) if len(per_class) else pd.DataFrame(columns=TIDY_COLUMNS)
    written = []
    out_dir = Path(out_dir)
    for exp in experiments:
        sub = tidy[tidy["experiment"] == exp]
        md, tex = [], []
        for dataset in sorted(set(summary.loc[summary["experiment"] == exp, "dataset"])):
            caption = _caption(dataset, exp)
            part = sub[sub["dataset"] == dataset]
            missing = [n for n in notes if n.startswith(f"{dataset}/{exp}/")]
            if part.empty:
                md.append(f"### {dataset}, {experiment_title(exp)}\n\nNo finished run yet.\n")
                tex.append(f"% {caption}\n% No finished run yet.\n")
                continue
            wide = wide_table(part, candidate=candidate)
            md.append(f"### {dataset}, {experiment_title(exp)}\n\n{caption}\n\n"
                      f"{_markdown(wide)}\n")
            if missing:
                md.append("Not included (not finished): " + "; ".join(missing) + "\n")
            tex.append(_latex(wide_table(part, latex=True, candidate=candidate), caption) + "\n")
        io.write_text(out_dir / f"precision_{exp}.md", "\n".join(md))
        io.write_text(out_dir / f"precision_{exp}.tex", "\n".join(tex))
        io.write_csv(out_dir / f"precision_{exp}.csv", sub)
        written += [out_dir / f"precision_{exp}.{s}" for s in ("md", "tex", "csv")]
    return written, notes


# ---------------------------------------------------------------------------- figure
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
        lift_values = [_lift_panel(ax, per_class, dataset, exp, base, losses)
                       for ax, (dataset, exp, base) in zip(flat_lift, lifts)]
        lift_values = [v for v in lift_values if v is not None]
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.analysis.tables",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", required=True, type=Path,
                        help="directory with classification_per_class/summary")
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--figure", type=Path, default=None,
                        help="precision-by-class-frequency figure (.png)")
    parser.add_argument("--candidate", default="scope",
                        help="the loss whose column comes first (classification.candidate)")
    add_loss_styles_argument(parser)
    args = parser.parse_args(argv)
    use_loss_styles(args.loss_styles)
    try:
        written, notes = write_precision_tables(args.tables, args.out_dir, args.candidate)
        if args.figure is not None:
            written += plot_precision_by_frequency(args.tables, args.figure)["paths"]
    except RunFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
