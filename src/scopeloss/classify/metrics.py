"""Test-set metrics: per-class precision/recall/F1/support and their summary, with the
long-tail field's many / medium / few-shot accuracy (the mean per-class accuracy, i.e.
recall, over the classes of each group, as OLTR's ``shot_acc``; groups by training images,
``SHOT_THRESHOLDS``).

Zero-division policy: a class the model never predicts has precision 0 (scikit-learn's
``zero_division=0``), and it counts in the mean and std of precision; the number of such
classes is reported as ``never_predicted``. The std is the population std (ddof=0).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

# Many / medium / few-shot classes by training images (the field's groups, Liu et al. 2019,
# OLTR: > 100, 20-100, < 20), per dataset kind: (few below, many above), or None: the
# field's thresholds placed where they sit on CIFAR-100-LT's profile (500 -> 5 images, at
# 30 % and 65 % of its log-range), on the dataset's own profile (the stand-ins have 2-122
# images per class: the field's thresholds would make every class few-shot). An analysis
# setting, not a hyperparameter: it changes no cell.
FIELD_SHOTS = (20.0, 100.0)
SHOT_THRESHOLDS: dict[str, tuple[float, float] | None] = {
    "caltech256": FIELD_SHOTS, "cifar_lt": FIELD_SHOTS, "image_list": FIELD_SHOTS,
    "digits_lt": None, "numbers_lt": None}

ZERO_DIVISION = 0
SHOTS = ("many", "medium", "few")
# where the field's thresholds sit on CIFAR-100-LT's log-profile (500 -> 5 images per class)
_CIFAR100_LT = (5.0, 500.0)


def shot_thresholds(kind: str, train_counts) -> tuple[float, float]:
    """(few-shot below, many-shot above) for a dataset of ``kind``: its declared thresholds,
    the field's for a kind not listed, or scaled to the counts' own profile (None)."""
    declared = SHOT_THRESHOLDS.get(kind, FIELD_SHOTS)
    if declared is not None:
        return declared
    counts = np.asarray(train_counts, dtype=float)
    tail, head = float(counts[counts > 0].min()), float(counts.max())
    lo, hi = _CIFAR100_LT
    span = math.log(hi / lo)
    return tuple(round(tail * (head / tail) ** (math.log(t / lo) / span), 2)  # type: ignore[return-value]
                 for t in FIELD_SHOTS)


def shot_accuracy(table: pd.DataFrame, thresholds: tuple[float, float]) -> dict:
    """Many / medium / few-shot accuracy of a per-class table (classes without test images
    left out; a group without a class: None), the thresholds and each group's class count."""
    few, many = thresholds
    tested = table[table["support"] > 0]
    groups = {"many": tested["train_count"] > many, "few": tested["train_count"] < few}
    groups["medium"] = ~(groups["many"] | groups["few"])
    out: dict = {}
    for name in SHOTS:
        recall = tested.loc[groups[name], "recall"]
        out[f"{name}_shot_acc"] = float(recall.mean()) if len(recall) else None
    out["shot_classes"] = [int(groups[name].sum()) for name in SHOTS]
    out["shot_thresholds"] = [float(few), float(many)]
    return out


def per_class_table(y_true, y_pred, class_names, train_counts) -> pd.DataFrame:
    """``class,name,train_count,support,precision,recall,f1`` for every class."""
    n = len(class_names)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(n), average=None, zero_division=ZERO_DIVISION)
    return pd.DataFrame({
        "class": np.arange(n),
        "name": list(class_names),
        "train_count": np.asarray(train_counts, dtype=np.int64),
        "support": support.astype(np.int64),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    })


def summarize(y_true, y_pred, table: pd.DataFrame, shots: tuple[float, float] = FIELD_SHOTS
              ) -> dict:
    """The run's test metrics; ``shots``: the many/medium/few thresholds (``shot_thresholds``)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    predicted = np.bincount(y_pred, minlength=len(table))
    return {
        "precision_mean": float(table["precision"].mean()),
        "precision_std": float(table["precision"].std(ddof=0)),
        "recall_mean": float(table["recall"].mean()),
        "f1_mean": float(table["f1"].mean()),
        "top1": float((y_true == y_pred).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "never_predicted": int((predicted == 0).sum()),
        "zero_division": str(ZERO_DIVISION),
        **shot_accuracy(table, shots),
    }


def test_metrics(y_true, y_pred, class_names, train_counts, kind: str
                 ) -> tuple[pd.DataFrame, dict]:
    """A test split's per-class table and summary metrics (``summarize``), with the
    many/medium/few thresholds of the dataset ``kind``."""
    table = per_class_table(y_true, y_pred, class_names, train_counts)
    return table, summarize(y_true, y_pred, table, shot_thresholds(kind, table["train_count"]))
