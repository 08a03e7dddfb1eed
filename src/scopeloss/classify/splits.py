"""The one fixed split every run of a dataset shares: stratified by class, seeded."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")


def stratified_split(labels, val_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, np.ndarray]:
    """Per class: shuffle with ``seed``, take round(n * test) for test, round(n * val) for val
    (each at least 1 when the class has 3 or more images), the rest for train."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if n >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        out["test"].append(idx[:n_test])
        out["val"].append(idx[n_test:n_test + n_val])
        out["train"].append(idx[n_test + n_val:])
    return {s: np.sort(np.concatenate(v)) for s, v in out.items()}
