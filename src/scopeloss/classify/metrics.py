"""Test-set metrics: per-class precision/recall/F1/support and their summary.

Zero-division policy: a class the model never predicts has precision 0 (scikit-learn's
``zero_division=0``), and it counts in the mean and std of precision; the number of such
classes is reported as ``never_predicted``. The std is the population std (ddof=0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

ZERO_DIVISION = 0


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


def summarize(y_true, y_pred, table: pd.DataFrame) -> dict:
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
    }
