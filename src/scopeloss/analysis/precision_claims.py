"""Claim C, about the classification half: does the candidate loss have the highest mean
per-class test precision in each dataset and experiment (the paper's Tables 1 and 2), and
the highest few-shot accuracy (the long-tail field's yardstick: the mean accuracy over the
classes with the fewest training images, ``classify.metrics``)? Both metrics' rows are one
family (Holm), decided with the others' in ``claim_rows.decide``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .aggregate import sort_in_order
from .claim_rows import not_run, others, row, run_test
from .reference import cls_loss_name, cls_loss_sort_key, span_words
from .runs import COMPLETE

PAPER_CLS_LOSSES = ("pel", "scope", "focal", "ce")
TABLE_OF = {"plain": "Table 1", "augmented": "Table 2"}


def finished_classification_runs(per_class: pd.DataFrame, summary: pd.DataFrame
                                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the finished runs' summaries, their mean per-class precision: one row per run)."""
    done = summary[summary["status"] == COMPLETE]
    keys = ["dataset", "experiment", "loss", "seed"]
    done_keys = set(done[keys].itertuples(index=False, name=None))
    per_class = per_class[[k in done_keys for k in per_class[keys].itertuples(
        index=False, name=None)]]
    runs = (per_class.groupby(keys, sort=False)["precision"].mean()
            .rename("precision_mean").reset_index())
    return done, runs


def precision_claims(per_class: pd.DataFrame, summary: pd.DataFrame, *, reps: int,
                     seed: int, candidate: str = "scope", ci_reps: int | None = None
                     ) -> list[dict]:
    """Claim C's rows (``ci_reps`` as in ``rl_claims.return_claims``)."""
    ci_reps = ci_reps or reps
    done, runs = finished_classification_runs(per_class, summary)
    if runs.empty:
        return [not_run("C", "no finished classification run in this grid")]
    rows = []
    combos = sort_in_order(runs[["dataset", "experiment"]].drop_duplicates(),
                           {"dataset": str, "experiment": lambda e: (TABLE_OF.get(e, "~"), e)})
    for dataset, exp in combos.itertuples(index=False, name=None):
        sub = runs[(runs["dataset"] == dataset) & (runs["experiment"] == exp)]
        where = f"{dataset} / {exp}" + (f" ({TABLE_OF[exp]})" if exp in TABLE_OF else "")
        epochs = done.loc[(done["dataset"] == dataset) & (done["experiment"] == exp),
                          "epochs_run"]
        budget = span_words(epochs, lambda v: f"{v:g}", "epochs")
        if candidate not in set(sub["loss"]):
            rows.append({**not_run("C", "no finished {candidate} run"), "where": where})
            continue
        rivals = others(sub["loss"], candidate, key=cls_loss_sort_key)
        if not rivals:
            rows.append({**not_run("C", "no other loss"), "where": where})
            continue
        few = done[(done["dataset"] == dataset) & (done["experiment"] == exp)]
        metrics = [(sub, "precision_mean", "mean per-class test precision", "")]
        if "few_shot_acc" in few and few["few_shot_acc"].notna().any():
            metrics.append((few, "few_shot_acc", "few-shot test accuracy",
                            "the field's yardstick: classes with the fewest training images"))
        for table, column, metric, why in metrics:
            values = {loss: g[column].dropna().to_numpy(float)
                      for loss, g in table.groupby("loss")}
            ref = values.get(candidate, np.zeros(0))
            for other in rivals:
                x = values.get(other, np.zeros(0))
                if not (ref.size and x.size):
                    continue
                est, low, high = stats.bootstrap_difference_ci(ref, x, reps=ci_reps, seed=seed)
                test = run_test({where: ref}, {where: x}, reps=reps, seed=seed)
                note = "; ".join(n for n in (why, "" if other in PAPER_CLS_LOSSES else
                                             "baseline not in the paper's tables") if n)
                rows.append(row(
                    "C", f"{{candidate}} vs {cls_loss_name(other)}", where,
                    f"{metric}, {{candidate}} - X", claimed="> 0", estimate=est, low=low,
                    high=high, n_seeds=min(ref.size, x.size), budget=budget, test=test,
                    note=note))
    return rows
