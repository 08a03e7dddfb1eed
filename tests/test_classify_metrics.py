"""Per-class precision and its summary against scikit-learn and hand-computed values."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, precision_score

from scopeloss.classify.metrics import per_class_table, summarize


def test_per_class_precision_with_a_never_predicted_class():
    # 4 classes; class 3 is never predicted (its precision is 0 by the zero-division policy).
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    y_pred = np.array([0, 0, 1, 1, 0, 2, 2, 0, 1, 2])
    table = per_class_table(y_true, y_pred, ["a", "b", "c", "d"], [50, 20, 10, 5])
    # By hand: class 0 predicted 4 times, 2 right; class 1 predicted 3, 1 right;
    # class 2 predicted 3, 2 right; class 3 never predicted.
    np.testing.assert_allclose(table["precision"], [2 / 4, 1 / 3, 2 / 3, 0.0])
    np.testing.assert_allclose(table["recall"], [2 / 3, 1 / 2, 2 / 4, 0.0])
    assert table["support"].tolist() == [3, 2, 4, 1]
    assert table["train_count"].tolist() == [50, 20, 10, 5]
    assert list(table.columns) == ["class", "name", "train_count", "support", "precision",
                                   "recall", "f1"]
    np.testing.assert_allclose(table["precision"],
                               precision_score(y_true, y_pred, average=None, zero_division=0))

    s = summarize(y_true, y_pred, table)
    p = np.array([1 / 2, 1 / 3, 2 / 3, 0.0])
    assert s["precision_mean"] == pytest.approx(p.mean())
    assert s["precision_mean"] == pytest.approx(
        precision_score(y_true, y_pred, average="macro", zero_division=0))
    assert s["precision_std"] == pytest.approx(np.sqrt(((p - p.mean()) ** 2).mean()))  # ddof 0
    assert s["top1"] == pytest.approx(5 / 10)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 4 + 0) / 4)
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert s["never_predicted"] == 1 and s["zero_division"] == "0"
