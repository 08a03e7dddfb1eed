"""The seed planner (scopeloss.analysis.power) against a brute-force power estimate written
here independently: the same design simulated, each row's p by significance.permutation_test
with its own statistic, Holm by hand, verdicts by their definitions."""

import math

import numpy as np
import pandas as pd
import pytest

from scopeloss.analysis import power, seed_plan, significance
from scopeloss.analysis.power import TaskSpread

SPREAD = [TaskSpread("E1", mean=10.0, sd=1.0, score_unit=1.0, reference=None)]
EFFECT = 2.0  # sd, on both scenarios (score_unit = sd, so 2.0 normalised = 2 sd)
GRIDS = 300


def _iqm(v):
    v = np.sort(v, axis=-1)
    n = v.shape[-1]
    lo, hi = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    return v[..., lo:hi].mean(-1)


def _brute_force_power(n: int, rng) -> dict[str, float]:
    """Scope vs Policy on one env, n seeds each, Scope 2 sd better: the claim's three rows
    (the env's mean difference, the aggregate's IQM difference and P(Scope > Policy))."""
    def mean_diff(xs, ys):
        return xs[0].mean(-1) - ys[0].mean(-1)

    def iqm_diff(xs, ys):
        return _iqm(xs[0]) - _iqm(ys[0])

    def poi(xs, ys):
        x, y = xs[0][..., :, None], ys[0][..., None, :]
        return ((x > y) + 0.5 * (x == y)).mean((-1, -2))

    hits = {"per env": 0, "IQM": 0, "P(better)": 0}
    floor = min(1.0, 2 / math.comb(2 * n, n))
    for _ in range(GRIDS):
        x = rng.normal(10 + EFFECT, 1.0, n)
        y = rng.normal(10, 1.0, n)
        ps, ests = [], []
        for stat, null in ((mean_diff, 0.0), (iqm_diff, 0.0), (poi, 0.5)):
            est, p = significance.permutation_test({"E1": x}, {"E1": y}, stat, reps=2000)
            ps.append(p)
            ests.append(est - null)
        adjusted = significance.holm(ps)
        # the family's floors are all the same: decidable iff floor <= 0.05 / 1 (last step)
        for name, p_adj, est in zip(hits, adjusted, ests):
            hits[name] += bool(floor <= 0.05 and p_adj <= 0.05 and est > 0)
    return {k: v / GRIDS for k, v in hits.items()}


def _planner_power(n: int) -> dict[str, float]:
    table = power.power_at("rl", SPREAD, ["policy", "scope"], "scope", n, effect_sd=EFFECT,
                           grids=GRIDS, reps=2000, seed=n)
    kind = np.where(table["where"].str.startswith("aggregate"),
                    np.where(table["metric"].str.startswith("IQM"), "IQM", "P(better)"),
                    "per env")
    return dict(zip(kind, table["power"]))


@pytest.mark.parametrize("n", [3, 4, 5])
def test_the_planners_power_agrees_with_brute_force(n):
    """At 3 seeds nothing can be decided (p >= 0.1: power 0); at 4 and 5 the planner's
    power of each row lies within 4 Monte Carlo standard errors of the brute force's."""
    mine, brute = _planner_power(n), _brute_force_power(n, np.random.default_rng(100 + n))
    assert set(mine) == set(brute)
    for row in brute:
        p = (mine[row] + brute[row]) / 2
        se = np.sqrt(max(p * (1 - p), 0.02) * 2 / GRIDS)
        assert abs(mine[row] - brute[row]) <= 4 * se, (row, mine[row], brute[row])
    if n == 3:
        assert set(mine.values()) == {0.0}


def test_the_planners_seed_count_is_the_brute_forces():
    """The fewest seeds with 80 % power for each kind of row: the planner's search agrees
    with the brute force tried at every count from 2 to 7 (within one seed where a count's
    power lies within Monte Carlo error of 80 %). With one env and three rows nothing is
    decidable below 5 seeds (4 vs 4: p >= 0.029 > 0.05 / 3)."""
    plan = power.seeds_needed("rl", SPREAD, ["policy", "scope"], "scope", max_seeds=7,
                              effect_sd=EFFECT, grids=GRIDS, reps=2000)
    summary = seed_plan.summary(plan).set_index("rows")["seeds_needed"]
    rng = np.random.default_rng(7)
    brute = {n: _brute_force_power(n, rng) for n in range(2, 8)}
    for row, name in (("per env", "per env"),
                      ("IQM of normalised final score, {candidate} - X", "IQM"),
                      ("P({candidate} run's final return > X run's)", "P(better)")):
        needed = next((n for n in range(2, 8) if brute[n][name] >= 0.8), np.nan)
        near = [n for n in range(2, 8) if abs(brute[n][name] - 0.8) < 3 * np.sqrt(0.16 / GRIDS)]
        assert summary[row] == needed or (near and abs(summary[row] - needed) <= 1), (
            row, summary[row], needed, {n: brute[n][name] for n in brute})


def test_the_planner_reads_the_tables_of_finished_runs(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"env": env, "loss": loss, "seed": s, "final_return": rng.normal(5 * i, 1.0),
             "normalized_final_return": np.nan, "total_steps": 1000, "status": "complete",
             "episodes": 10}
            for i, env in enumerate(("E1", "E2"), 1) for loss in ("policy", "scope")
            for s in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "rl_final_runs.csv", index=False)
    # and a classification half: the plan holds both claims (A and C)
    keys = [{"dataset": "numbers_lt", "experiment": "plain", "loss": loss, "seed": s}
            for loss in ("ce", "scope") for s in range(3)]
    pd.DataFrame([{**k, "class": 0, "precision": rng.normal(0.6, 0.03)} for k in keys]).to_csv(
        tmp_path / "classification_per_class.csv", index=False)
    pd.DataFrame([{**k, "status": "complete", "epochs_run": 5} for k in keys]).to_csv(
        tmp_path / "classification_summary.csv", index=False)
    spreads = power.rl_spreads(pd.DataFrame(rows))
    assert [t.task for t in spreads] == ["E1", "E2"] and all(0.3 < t.sd < 3 for t in spreads)
    out = tmp_path / "plan"
    assert power.main(["--tables", str(tmp_path), "--out", str(out), "--grids", "20",
                       "--max-seeds", "4", "--effect-sd", "3"]) == 0
    text = out.with_suffix(".md").read_text()
    assert "| A | per env | 3 sd |" in text and "Seeds per loss" in text
    assert "| C | per dataset / experiment | 3 sd |" in text, text


def test_the_simulated_sd_carries_its_uncertainty():
    """The simulated spread is the pooled sd's upper one-sided 80 % chi-square bound (dof =
    runs - cells): from 2 cells x 3 seeds (4 dof) it is well above the estimate, from 2 x 50
    close to it."""
    from scipy import stats as sps

    rng = np.random.default_rng(0)
    for n, lo, hi in ((3, 1.5, 1.6), (50, 1.0, 1.1)):
        groups = [rng.normal(0, 1, n), rng.normal(3, 1, n)]
        t = power.spread_of("E", groups, score_unit=1.0)
        dof = 2 * (n - 1)
        assert t.sd_sim == pytest.approx(t.sd * np.sqrt(dof / sps.chi2.ppf(0.2, dof)))
        assert lo < t.sd_sim / t.sd < hi


def test_a_bimodal_env_is_resampled_not_drawn_normal():
    """Freeway's runs score 0 or about 20: Shapiro-Wilk rejects normality and the simulation
    draws only the observed residuals' values (two clusters), never values in between."""
    freeway = [np.array([0.0, 21.0, 0.0, 20.5, 0.0, 21.5]), np.array([20.0, 0.0, 21.0, 0.0,
                                                                      20.0, 0.0])]
    t = power.spread_of("MinAtarFreeway", freeway, score_unit=1.0)
    assert t.residuals is not None
    draws = t.draw(np.random.default_rng(0), 2000)
    assert set(np.round(draws - t.mean, 6)) <= set(np.round(t.residuals, 6))
    normal = power.spread_of("E", [np.random.default_rng(0).normal(0, 1, 12)], score_unit=1.0)
    assert normal.residuals is None


def test_the_relabellings_reach_below_the_smallest_holm_step():
    """A 50-row family's strictest Holm step is 0.001, which 2,000 relabellings reach only at
    their floor: the planner raises them to 4,000; a family too large for 20,000 is named."""
    assert significance.monte_carlo_reps(50, 2000) == 4000
    assert significance.monte_carlo_reps(3, 2000) == 2000
    spreads = [TaskSpread(f"E{i}", 10.0, 1.0, 1.0, None) for i in range(3)]
    losses = [f"l{i}" for i in range(4)]
    reps, warning = power.family_reps("rl", spreads, losses, "l0", reps=2000)
    assert reps == 2000 and not warning  # 3 x (3 + 2) = 15 rows: 0.05 / 15 > 2 x 2 / 2001
    spreads = [TaskSpread(f"E{i}", 10.0, 1.0, 1.0, None) for i in range(40)]
    losses = [f"l{i}" for i in range(30)]
    reps, warning = power.family_reps("rl", spreads, losses, "l0", reps=2000)
    assert reps == power.MAX_REPS and "Monte Carlo floor" in warning


def test_every_row_kind_is_planned_at_one_effect_in_sd():
    spreads = [TaskSpread("E1", 10.0, 2.0, 40.0, None), TaskSpread("E2", 0.0, 1.0, 10.0, None)]
    table = power.power_at("rl", spreads, ["policy", "scope"], "scope", 3, effect_sd=1.0,
                           grids=5, reps=500)
    assert set(table["effect"]) == {"1 sd", "1 sd (= 0.075 normalised score)"}


def _brute_force_claim_d(n: int, rng, grids: int) -> float:
    """One task, default and one other value equal (sd 1), n seeds each: P(supported) by the
    definition, written here: pooled sd of the two cells, the default shifted up by 0.5 sd,
    one-sided exact permutation p <= 0.05 (one test: Holm is the identity), not contradicted
    (two-sided p <= 0.05 with the default lower)."""
    hits = 0
    for _ in range(grids):
        x, y = rng.normal(0, 1, n), rng.normal(0, 1, n)
        sd = np.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
        _, p_ni = significance.permutation_test({"t": x / sd + 0.5}, {"t": y / sd},
                                                alternative="greater")
        est, p_worse = significance.permutation_test({"t": x / sd}, {"t": y / sd})
        hits += p_ni <= 0.05 and not (p_worse <= 0.05 and est < 0)
    return hits / grids


def test_the_planners_claim_d_power_agrees_with_brute_force():
    members = [{"swept": "pel", "param": "alpha", "value": v, "name": n, "default": d}
               for v, n, d in ((8e-6, "pel", True), (0.05, "pel_alpha0.05", False))]
    spread = [TaskSpread("ds\0plain", 0.5, 1.0, 1.0, None)]
    for n in (6, 12):
        table = power.power_at("classification", spread, [], None, n, grids=GRIDS,
                               reps=2000, seed=n, members=members)
        (mine,) = table["power"]
        brute = _brute_force_claim_d(n, np.random.default_rng(50 + n), GRIDS)
        se = np.sqrt(max((mine + brute) / 2 * (1 - (mine + brute) / 2), 0.02) * 2 / GRIDS)
        assert abs(mine - brute) <= 4 * se, (n, mine, brute)
        assert table["effect"].iloc[0] == "default = every value (margin 0.5 sd)"
