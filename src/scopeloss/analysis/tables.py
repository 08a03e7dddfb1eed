"""The paper's Tables 1-2 (per-class precision); with ``--figure``, also the
precision-by-class-frequency figure (drawn by ``analysis.precision_figure``).

``python -m scopeloss.analysis.tables --tables results/tables --out-dir results/tables --figure figures/precision_by_class_frequency.png``
writes ``precision_{experiment}.md``, ``.tex`` and ``.csv`` for every experiment present:
rows the mean and the standard deviation (over classes, ddof 0) of per-class precision,
a column per loss in the paper's order (PEL, SL, FL, CEL, then the extra baselines); a
cell is one run's value, or mean ± std (ddof 1) across seeds when there are several. For
Caltech-256 the paper's reported values are printed in rows marked "(paper)".

Experiments beyond the paper (``plain_balanced``: Table 1's setting with class-balanced
re-sampling; ``augmented_cuda``: Table 2's with the CUDA augmentation curriculum; any other
name) get tables of their own, headed "(beyond the paper)", without paper rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from scopeloss import atomic

from .aggregate import read_table, sort_in_order
from .reference import (PAPER_DATASET, PAPER_PRECISION,
                        add_loss_styles_argument, cls_loss_name, cls_loss_sort_key,
                        experiment_sort_key, experiment_title, use_loss_styles)
from .runs import COMPLETE, RunFileError

STATISTICS = {"mean": "Mean precision", "std": "Std of precision"}
TIDY_COLUMNS = ["dataset", "experiment", "statistic", "source", "loss", "loss_name", "value",
                "spread", "n_seeds", "cell"]


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
        atomic.write_text(out_dir / f"precision_{exp}.md", "\n".join(md))
        atomic.write_text(out_dir / f"precision_{exp}.tex", "\n".join(tex))
        atomic.write_csv(out_dir / f"precision_{exp}.csv", sub)
        written += [out_dir / f"precision_{exp}.{s}" for s in ("md", "tex", "csv")]
    return written, notes


SHOT_COLUMNS = {"top1": "top-1", "balanced_accuracy": "balanced", "many_shot_acc": "many",
                "medium_shot_acc": "medium", "few_shot_acc": "few",
                # the same, from the last epoch's weights instead of the best-validation's
                "final_epoch_top1": "top-1, last epoch",
                "final_epoch_few_shot_acc": "few, last epoch"}


def write_shot_table(tables: str | Path, out_dir: str | Path) -> list[Path]:
    """``shot_accuracy.md`` / ``.csv``: the long-tail field's yardsticks beside Tables 1-2:
    top-1, balanced, many / medium / few-shot test accuracy (mean ± std across seeds; finished
    runs), with each dataset's thresholds and group sizes."""
    summary = read_table(tables, "classification_summary")
    done = summary[summary["status"] == COMPLETE].copy()
    for column in SHOT_COLUMNS:  # summaries written before these metrics existed: NaN
        if column not in done:
            done[column] = float("nan")
    keys = ["dataset", "experiment", "loss"]
    tidy = (done.groupby(keys, sort=False)[list(SHOT_COLUMNS)].agg(["mean", "std", "count"])
            if len(done) else pd.DataFrame())
    out_dir = Path(out_dir)
    md = ["# Many / medium / few-shot accuracy", "",
          "Test accuracy by group of classes (training images per class: many above, few "
          "below the thresholds; the field's 100 and 20 for real datasets, scaled to the "
          "stand-ins' own profiles: `classify/metrics.py`, SHOT_THRESHOLDS), the mean of per-class accuracy "
          "within a group; mean ± std across seeds. From the best-validation epoch's "
          "weights (what the claims use), and, marked *last epoch*, from the final "
          "epoch's.", ""]
    flat = []
    for (dataset, experiment), part in (done.groupby(["dataset", "experiment"], sort=False)
                                        if len(done) else []):
        shots = (part["shot_thresholds"] if "shot_thresholds" in part
                 else pd.Series(dtype=object)).dropna()
        md += [f"## {dataset}, {experiment_title(experiment)}", ""]
        if len(shots):
            md += [f"Training images per class: few below / many above {shots.iloc[0]}.", ""]
        md += ["| loss | " + " | ".join(SHOT_COLUMNS.values()) + " |",
               "|---|" + "---:|" * len(SHOT_COLUMNS)]
        order = sorted(set(part["loss"]), key=cls_loss_sort_key)
        for loss in order:
            stats_row = tidy.loc[(dataset, experiment, loss)]
            cells = []
            for column in SHOT_COLUMNS:
                mean, std, n = (stats_row[(column, k)] for k in ("mean", "std", "count"))
                cells.append("—" if n == 0 else f"{mean:.3f}" if n == 1
                             else f"{mean:.3f} ± {std:.3f}")
                flat.append({"dataset": dataset, "experiment": experiment, "loss": loss,
                             "metric": column, "mean": mean, "std": std, "seeds": int(n)})
            md.append(f"| {cls_loss_name(loss)} | " + " | ".join(cells) + " |")
        md.append("")
    if not flat:
        md.append("No finished run yet.")
    atomic.write_text(out_dir / "shot_accuracy.md", "\n".join(md) + "\n")
    atomic.write_csv(out_dir / "shot_accuracy.csv", pd.DataFrame(
        flat, columns=["dataset", "experiment", "loss", "metric", "mean", "std", "seeds"]))
    return [out_dir / "shot_accuracy.md", out_dir / "shot_accuracy.csv"]


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
        written += write_shot_table(args.tables, args.out_dir)
        if args.figure is not None:
            from .precision_figure import plot_precision_by_frequency

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
