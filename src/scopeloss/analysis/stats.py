"""Statistics across seeds and games, with numpy/scipy.

rliable (Agarwal et al. 2021) computes the same aggregates but takes a rectangular
runs x tasks matrix per method; here a task may have fewer finished runs than another (a
run still training, a seed that failed), so these functions take ragged per-task arrays.
tests/test_analysis_rliable.py checks them against rliable where both apply.

* ``bootstrap_ci``: percentile bootstrap of the mean across seeds.
* ``iqm``: interquartile mean (scipy's ``trim_mean`` with 25% cut each side, as rliable).
* ``stratified_bootstrap_ci``: resample runs within each task independently (Agarwal et
  al. 2021), apply an aggregate (IQM, mean, optimality gap) to the pooled resample.
* ``score_distribution``: rliable's performance profile (the fraction of all runs whose
  score exceeds each threshold tau), with stratified-bootstrap bands.
* ``bootstrap_difference_ci``: percentile bootstrap of mean(X) - mean(Y), the seeds of X
  and of Y resampled independently.
* ``stratified_bootstrap_difference``: aggregate(X) - aggregate(Y) over the tasks both
  have, runs resampled within each task and loss.
* ``probability_of_improvement``: P(X > Y) averaged over tasks, each task's value the
  Mann-Whitney-style comparison of every run of X with every run of Y, ties counting 1/2.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

DEFAULT_REPS = 10_000
CONFIDENCE = 0.95


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _percentiles(samples: np.ndarray, confidence: float, axis: int = 0) -> tuple:
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=axis)
    return low, high


def bootstrap_ci(values: ArrayLike, *, reps: int = DEFAULT_REPS,
                 confidence: float = CONFIDENCE, seed: int | None = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean. One value gives (v, v); none gives (nan, nan)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (np.nan, np.nan)
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    idx = _rng(seed).integers(0, x.size, size=(reps, x.size))
    low, high = _percentiles(x[idx].mean(axis=1), confidence)
    return (float(low), float(high))


def bootstrap_difference_ci(x: ArrayLike, y: ArrayLike, *,
                            reps: int = DEFAULT_REPS, confidence: float = CONFIDENCE,
                            seed: int | None = 0) -> tuple[float, float, float]:
    """(mean(x) - mean(y), CI low, CI high): a percentile bootstrap resampling x and y
    independently (unpaired runs). nan when either is empty; with one value in both the
    interval is the point (there is no spread to resample)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    a, b = xs[~np.isnan(xs)], ys[~np.isnan(ys)]
    if not (a.size and b.size):
        return (np.nan, np.nan, np.nan)
    point = float(a.mean() - b.mean())
    rng = _rng(seed)
    xb = a[rng.integers(0, a.size, size=(reps, a.size))].mean(axis=1)
    yb = b[rng.integers(0, b.size, size=(reps, b.size))].mean(axis=1)
    low, high = _percentiles(xb - yb, confidence)
    return point, float(low), float(high)


def bootstrap_mean_band(curves: np.ndarray, *, reps: int = 2000, confidence: float = CONFIDENCE,
                        seed: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean across runs and a percentile-bootstrap band, pointwise on a grid.

    ``curves`` is (runs, points) with NaN where a run has no value yet; returns
    (mean, low, high), each (points,)."""
    curves = np.asarray(curves, dtype=float)
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        mean = np.nanmean(curves, axis=0)
        if curves.shape[0] < 2:
            return mean, mean.copy(), mean.copy()
        idx = _rng(seed).integers(0, curves.shape[0], size=(reps, curves.shape[0]))
        boot = np.nanmean(curves[idx], axis=1)  # (reps, points)
        low, high = _percentiles(boot, confidence)
    return mean, low, high


def iqm(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the values."""
    return sps.trim_mean(values, proportiontocut=0.25, axis=axis)  # a 0-d array for axis=None


def _finished_tasks(scores_by_task: Mapping[str, ArrayLike]) -> list[np.ndarray]:
    """Each task's scores without NaN (a run with no score yet); tasks left empty dropped."""
    tasks = [np.asarray(v, dtype=float) for v in scores_by_task.values()]
    return [t for t in (t[~np.isnan(t)] for t in tasks) if t.size]


def _stratified_resample(tasks: Sequence[np.ndarray], reps: int,
                         rng: np.random.Generator) -> np.ndarray:
    """(reps, total runs): each task's runs resampled with replacement within that task."""
    parts = [t[rng.integers(0, t.size, size=(reps, t.size))] for t in tasks]
    return np.concatenate(parts, axis=1)


AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "IQM": lambda x: iqm(x, axis=-1),
    "Mean": lambda x: np.mean(x, axis=-1),
    # rliable's: how far the runs fall short of a normalised score of 1 (above 1 counts as 1)
    "Optimality gap": lambda x: 1.0 - np.mean(np.minimum(x, 1.0), axis=-1),
}


def stratified_bootstrap_ci(scores_by_task: Mapping[str, ArrayLike], aggregate: str,
                            *, reps: int = DEFAULT_REPS, confidence: float = CONFIDENCE,
                            seed: int | None = 0) -> tuple[float, float, float]:
    """(point estimate, CI low, CI high) of ``aggregate`` over all runs of all tasks."""
    fn = AGGREGATES[aggregate]
    tasks = _finished_tasks(scores_by_task)
    if not tasks:
        return (np.nan, np.nan, np.nan)
    point = float(fn(np.concatenate(tasks)))
    boot = fn(_stratified_resample(tasks, reps, _rng(seed)))
    low, high = _percentiles(boot, confidence)
    return point, float(low), float(high)


def score_distribution(scores_by_task: Mapping[str, ArrayLike], taus: ArrayLike, *,
                       reps: int = DEFAULT_REPS, confidence: float = CONFIDENCE,
                       seed: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rliable's score distribution (a performance profile): for each ``tau``, the fraction
    of all runs of all tasks scoring above it; (point, CI low, CI high), one value per tau,
    the runs resampled within each task."""
    taus = np.asarray(taus, dtype=float)
    tasks = _finished_tasks(scores_by_task)
    if not tasks:
        nan = np.full(taus.shape, np.nan)
        return nan, nan, nan
    point = (np.concatenate(tasks)[:, None] > taus).mean(axis=0)
    boot = _stratified_resample(tasks, reps, _rng(seed))  # (reps, runs)
    fractions = np.stack([(boot > tau).mean(axis=1) for tau in taus], axis=1)
    low, high = _percentiles(fractions, confidence)
    return point, low, high


def paired_tasks(x_by_task: Mapping[str, ArrayLike],
                 y_by_task: Mapping[str, ArrayLike]) -> tuple[list, list]:
    """The runs of X and of Y on each task both have finished runs on (NaN dropped), in
    task order: ([x arrays], [y arrays])."""
    xs, ys = [], []
    for task in sorted(set(x_by_task) & set(y_by_task)):
        x = np.asarray(x_by_task[task], dtype=float)
        y = np.asarray(y_by_task[task], dtype=float)
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        if x.size and y.size:
            xs.append(x)
            ys.append(y)
    return xs, ys


def stratified_bootstrap_difference(x_by_task: Mapping[str, ArrayLike],
                                    y_by_task: Mapping[str, ArrayLike], aggregate: str,
                                    *, reps: int = DEFAULT_REPS,
                                    confidence: float = CONFIDENCE,
                                    seed: int | None = 0) -> tuple[float, float, float, int]:
    """(aggregate(X) - aggregate(Y), CI low, CI high, number of tasks) over the tasks where
    both have runs; each loss's runs resampled within each task (stratified bootstrap)."""
    fn = AGGREGATES[aggregate]
    xs, ys = paired_tasks(x_by_task, y_by_task)
    if not xs:
        return (np.nan, np.nan, np.nan, 0)
    rng = _rng(seed)
    point = float(fn(np.concatenate(xs)) - fn(np.concatenate(ys)))
    boot = fn(_stratified_resample(xs, reps, rng)) - fn(_stratified_resample(ys, reps, rng))
    low, high = _percentiles(boot, confidence)
    return point, float(low), float(high), len(xs)


def pooled_sd(groups: Sequence[np.ndarray]) -> float:
    """The standard deviation within groups, pooled (groups of one value do not count)."""
    num = sum(((g - g.mean()) ** 2).sum() for g in groups if g.size > 1)
    dof = sum(g.size - 1 for g in groups if g.size > 1)
    return float(np.sqrt(num / dof)) if dof else np.nan


def pooled_dof(groups: Sequence[np.ndarray]) -> int:
    """The degrees of freedom of ``pooled_sd`` over the same groups."""
    return int(sum(g.size - 1 for g in groups if g.size > 1))


def pairwise_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) over all pairs of the last axis, ties 1/2; x (..., n), y (..., m)."""
    diff = x[..., :, None] - y[..., None, :]
    return ((diff > 0).mean(axis=(-2, -1)) + 0.5 * (diff == 0).mean(axis=(-2, -1)))


def probability_of_improvement(x_by_task: Mapping[str, ArrayLike],
                               y_by_task: Mapping[str, ArrayLike], *,
                               reps: int = DEFAULT_REPS, confidence: float = CONFIDENCE,
                               seed: int | None = 0) -> tuple[float, float, float, int]:
    """(P(X > Y), CI low, CI high, number of tasks) over the tasks both X and Y have runs on.

    The bootstrap resamples X's and Y's runs independently within each task."""
    rng = _rng(seed)
    point, boot, n = 0.0, np.zeros(reps), 0
    for x, y in zip(*paired_tasks(x_by_task, y_by_task)):
        n += 1
        point += float(pairwise_improvement(x, y))
        xb = x[rng.integers(0, x.size, size=(reps, x.size))]
        yb = y[rng.integers(0, y.size, size=(reps, y.size))]
        boot += pairwise_improvement(xb, yb)
    if n == 0:
        return (np.nan, np.nan, np.nan, 0)
    low, high = _percentiles(boot / n, confidence)
    return point / n, float(low), float(high), n


class _quiet_nan_warnings:
    """Silence 'Mean of empty slice' where a grid point has no run yet (NaN is the answer)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
