"""Statistics across seeds and games, checked against numbers worked out by hand."""

import numpy as np
import pytest

from scopeloss.analysis import stats


def test_bootstrap_ci_edge_cases_and_two_seeds():
    assert stats.bootstrap_ci([]) == (pytest.approx(np.nan, nan_ok=True),) * 2
    assert stats.bootstrap_ci([3.5]) == (3.5, 3.5)
    # Two seeds a < b: resampled means are a, (a+b)/2, b with prob 1/4, 1/2, 1/4, so the
    # 2.5th/97.5th percentiles are a and b.
    assert stats.bootstrap_ci([2.0, 10.0]) == (2.0, 10.0)
    assert stats.bootstrap_ci([4.0, 4.0, 4.0]) == (4.0, 4.0)


def test_bootstrap_ci_matches_the_normal_approximation_for_many_seeds():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=200)
    low, high = stats.bootstrap_ci(x, reps=20_000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert low == pytest.approx(x.mean() - half, abs=0.06)
    assert high == pytest.approx(x.mean() + half, abs=0.06)


def test_iqm_is_the_mean_of_the_middle_half():
    x = np.array([100.0, -50.0, 1.0, 2.0, 3.0, 4.0, 7.0, -9.0])
    # sorted: -50 -9 | 1 2 3 4 | 7 100  -> mean of 1, 2, 3, 4
    assert stats.iqm(x) == pytest.approx(2.5)
    assert stats.iqm(np.arange(12.0)) == pytest.approx(np.mean([3, 4, 5, 6, 7, 8]))


def test_stratified_bootstrap_resamples_within_each_task():
    # Each task is constant, so resampling within tasks never changes the pooled sample:
    # the CI collapses to the point. A pooled (unstratified) bootstrap would not.
    scores = {"Pong": [0.0, 0.0, 0.0], "Breakout": [1.0, 1.0, 1.0]}
    assert stats.stratified_bootstrap_ci(scores, "Mean") == (0.5, 0.5, 0.5)
    assert stats.stratified_bootstrap_ci(scores, "IQM") == (0.5, 0.5, 0.5)


def test_stratified_bootstrap_point_and_ci():
    scores = {"a": [0.0, 1.0, 2.0, 3.0], "b": [10.0, 11.0, 12.0, 13.0]}
    est, low, high = stats.stratified_bootstrap_ci(scores, "IQM")
    assert est == pytest.approx(np.mean([2.0, 3.0, 10.0, 11.0]))
    assert low < est < high
    est, low, high = stats.stratified_bootstrap_ci(scores, "Mean")
    assert est == pytest.approx(6.5)
    # every resample takes 4 from each task: its mean lies in [(0+10)/2, (3+13)/2]
    assert 5.0 <= low < 6.5 < high <= 8.0


def test_probability_of_improvement_by_hand():
    x = {"t1": [1.0, 2.0, 3.0], "t2": [5.0, 6.0]}
    y = {"t1": [2.0, 2.0, 0.0], "t2": [0.0, 1.0], "t3": [9.0]}
    # t1: x=1 beats 0 -> 1; x=2 beats 0, ties 2,2 -> 2; x=3 beats all -> 3; 6/9.
    # t2: every x beats every y -> 1. t3 has no x and is left out.
    p, low, high, n = stats.probability_of_improvement(x, y)
    assert n == 2
    assert p == pytest.approx((6 / 9 + 1.0) / 2)
    assert 0.0 <= low <= p <= high <= 1.0
    assert stats.probability_of_improvement({"t": [5.0]}, {"t": [1.0, 2.0]})[:3] == (1.0, 1.0, 1.0)
    assert stats.probability_of_improvement({"t": [1.0]}, {"t": [1.0]})[0] == 0.5


def test_bootstrap_band_ignores_runs_without_a_value_yet():
    curves = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, 6.0]])
    mean, low, high = stats.bootstrap_mean_band(curves)
    np.testing.assert_allclose(mean, [2.0, 3.0, 6.0])
    np.testing.assert_allclose([low[0], high[0]], [1.0, 3.0])
    np.testing.assert_allclose([low[2], high[2]], [6.0, 6.0])
