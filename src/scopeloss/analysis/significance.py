"""Hypothesis tests behind the claims' verdicts: exact permutation tests across seeds,
stratified by task, and Holm's correction within a claim.

Why permutation tests: a claim compares 2-5 seeds per loss. A percentile bootstrap over so
few runs is far too narrow (with two seeds its "CI" is the range of the two), and on
simulated null grids it called 17-28 % of comparisons. A permutation test assumes only that,
with no difference between the losses, the loss labels of one task's runs are exchangeable:
its level holds at any n. With few seeds it is exact (every relabelling enumerated), so the
smallest p it can reach is known in advance: with 2 vs 2 seeds, two-sided, 2/C(4,2) = 1/3,
so such a comparison can never be significant and is labelled *underpowered*.

* ``permutation_test``: p of a statistic of (X runs, Y runs) per task, relabelling runs
  within each task; exact when the relabellings number at most ``EXACT_LIMIT``, else Monte
  Carlo with the (b + 1) / (reps + 1) estimate (still a valid test).
* ``holm``: Holm-Bonferroni adjusted p-values (family-wise error control under any
  dependence between the comparisons of a claim).
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .stats import paired_tasks

ALPHA = 0.05
# The verdicts of every claim (claims.py, tuning_claim.py)
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
ONE_SEED, UNDERPOWERED, NOT_RUN = "inconclusive (one seed)", "underpowered", "not run"
EXACT_LIMIT = 20_000
DEFAULT_PERMUTATIONS = 10_000

# statistic(xs, ys): per task t, xs[t] (K, n_t) and ys[t] (K, m_t) -> (K,) values
Statistic = Callable[[list[np.ndarray], list[np.ndarray]], np.ndarray]


def mean_difference(xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
    """Mean over tasks of mean(X) - mean(Y)."""
    return np.mean([x.mean(-1) - y.mean(-1) for x, y in zip(xs, ys)], axis=0)


def relabellings(x_by_task: Mapping, y_by_task: Mapping) -> int:
    """How many ways the runs of the shared tasks can be split into X and Y."""
    xs, ys = paired_tasks(x_by_task, y_by_task)
    return math.prod(math.comb(x.size + y.size, x.size) for x, y in zip(xs, ys)) if xs else 0


def min_p_value(x_by_task: Mapping, y_by_task: Mapping, *, sides: int = 2) -> float:
    """The smallest p an exact permutation test of this design can give (``sides`` 2:
    two-sided, 1: one-sided)."""
    k = relabellings(x_by_task, y_by_task)
    return 1.0 if k == 0 else min(1.0, sides / k)


def _exact(xs, ys):
    """Every relabelling of the runs within each task (the product over tasks), as arrays."""
    splits = []
    for x, y in zip(xs, ys):
        z, n = np.concatenate([x, y]), x.size
        chosen = np.array(list(itertools.combinations(range(z.size), n)), dtype=int)
        mask = np.zeros((len(chosen), z.size), dtype=bool)
        np.put_along_axis(mask, chosen, True, axis=1)
        rest = np.nonzero(~mask)[1].reshape(len(chosen), z.size - n)
        splits.append((z[chosen], z[rest]))
    # row r of the product: task t's split index = the t-th digit of r (mixed radix)
    grids = np.meshgrid(*[np.arange(len(a)) for a, _ in splits], indexing="ij")
    index = [g.ravel() for g in grids]
    return ([a[i] for (a, _), i in zip(splits, index)],
            [b[i] for (_, b), i in zip(splits, index)])


def _monte_carlo(xs, ys, reps: int, rng: np.random.Generator):
    px, py = [], []
    for x, y in zip(xs, ys):
        z = np.concatenate([x, y])
        perm = rng.permuted(np.tile(z, (reps, 1)), axis=1)
        px.append(perm[:, :x.size])
        py.append(perm[:, x.size:])
    return px, py


def permutation_test(x_by_task: Mapping[str, ArrayLike],
                     y_by_task: Mapping[str, ArrayLike],
                     statistic: Statistic = mean_difference, *,
                     reps: int = DEFAULT_PERMUTATIONS, seed: int = 0,
                     alternative: str = "two-sided") -> tuple[float, float]:
    """(observed statistic, p) for X vs Y over the tasks both have runs on, runs relabelled
    within each task; ``alternative`` "two-sided", or "greater" (one-sided: the statistic is
    claimed above its null value). NaN, 1 when there is nothing to compare."""
    xs, ys = paired_tasks(x_by_task, y_by_task)
    if not xs:
        return np.nan, 1.0
    observed = float(statistic([x[None] for x in xs], [y[None] for y in ys])[0])
    exact = relabellings(x_by_task, y_by_task) <= EXACT_LIMIT
    px, py = _exact(xs, ys) if exact else _monte_carlo(xs, ys, reps, np.random.default_rng(seed))
    null = statistic(px, py)
    tol = 1e-12 * max(1.0, abs(observed))  # the observed split itself counts as extreme
    upper, lower = int((null >= observed - tol).sum()), int((null <= observed + tol).sum())
    if exact:  # the observed labelling is among the enumerated ones
        p_upper, p_lower = upper / null.size, lower / null.size
    else:
        p_upper, p_lower = (upper + 1) / (reps + 1), (lower + 1) / (reps + 1)
    if alternative == "greater":
        return observed, min(1.0, p_upper)
    return observed, min(1.0, 2 * min(p_upper, p_lower))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if not ok.size:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def reachable_threshold(floors: Sequence[float], row: int, alpha: float = ALPHA) -> float:
    """The most lenient Holm threshold row ``row`` of a family could face, given every row's
    smallest achievable p (``floors``): Holm rejects in order of p, each at alpha / (rows
    left), and stops at the first that fails, so at best the row comes after every other row
    that could be rejected before it (greedily, smallest floors first). A row whose floor
    is above this threshold cannot be decided by this design, whatever the data."""
    m = int(np.sum(~np.isnan(np.asarray(floors, dtype=float))))
    others = sorted(f for i, f in enumerate(floors) if i != row and not np.isnan(f))
    before = 0
    for f in others:  # position `before` has threshold alpha / (m - before)
        if f > alpha / (m - before):
            break
        before += 1
    return alpha / (m - before)


def seeds_needed(family_size: int, alpha: float = ALPHA) -> int:
    """Seeds per loss (equal on both sides, one task) for the exact two-sided test to reach
    alpha / family_size, Holm's strictest step: the fewest that can decide every comparison
    of a claim."""
    return seeds_to_reach(alpha / max(1, family_size))


def seeds_to_reach(threshold: float, *, tasks: int = 1, sides: int = 2) -> int:
    """The fewest seeds per loss (n vs n on each of ``tasks`` tasks) whose exact test can
    give a p at or below ``threshold``: sides / C(2n, n)^tasks <= threshold."""
    n = 1
    while sides / math.comb(2 * n, n) ** tasks > threshold:
        n += 1
    return n


def monte_carlo_reps(family_size: int, reps: int, alpha: float = ALPHA) -> int:
    """Monte Carlo relabellings enough for a two-sided p to reach half of Holm's strictest
    step (alpha / family_size): the floor 2 / (reps + 1) of a Monte Carlo p must lie below
    every step the family can face. ``reps`` if it already does."""
    return max(reps, math.ceil(4 * max(1, family_size) / alpha))
