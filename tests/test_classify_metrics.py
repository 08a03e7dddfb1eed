"""Per-class precision and its summary against scikit-learn and hand-computed values."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, precision_score

from scopeloss.classify.metrics import per_class_table, shot_accuracy, shot_thresholds, summarize


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


def test_many_medium_few_shot_accuracy_by_hand():
    # six classes: 200 and 150 training images (many), 50 and 30 (medium), 10 and 5 (few);
    # per-class accuracy (recall) 1, 0.5 | 0.75, 0.25 | 0, 1/3
    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5])
    y_pred = np.array([0, 0, 1, 0, 2, 2, 2, 0, 3, 0, 0, 0, 0, 0, 5, 0, 0])
    table = per_class_table(y_true, y_pred, list("abcdef"), [200, 150, 50, 30, 10, 5])
    s = summarize(y_true, y_pred, table, (20, 100))
    assert s["many_shot_acc"] == pytest.approx(0.75)
    assert s["medium_shot_acc"] == pytest.approx(0.5)
    assert s["few_shot_acc"] == pytest.approx(1 / 6)
    assert s["shot_classes"] == [2, 2, 2] and s["shot_thresholds"] == [20.0, 100.0]
    # a group without a class has no accuracy; the thresholds themselves are medium
    edge = per_class_table(y_true, y_pred, list("abcdef"), [100, 100, 20, 20, 20, 20])
    out = shot_accuracy(edge, (20, 100))
    assert out["many_shot_acc"] is None and out["few_shot_acc"] is None
    assert out["shot_classes"] == [0, 6, 0]


def test_shot_thresholds_are_the_fields_or_scaled_to_the_profile():
    assert shot_thresholds("caltech256", [827, 80]) == (20.0, 100.0)
    assert shot_thresholds("a_kind_of_my_own", [5, 500]) == (20.0, 100.0)
    # a stand-in: where 20 and 100 sit on CIFAR-100-LT's 5..500 log-profile, on its own
    tail, head = 2.4, 24.0
    pos = np.log([20 / 5, 100 / 5]) / np.log(100)
    want = tuple(np.round(tail * (head / tail) ** pos, 2))
    assert shot_thresholds("numbers_lt", np.geomspace(head, tail, 100)) == want
    assert want == (4.8, 10.73)
