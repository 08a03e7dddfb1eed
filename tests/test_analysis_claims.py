"""The claims table on fabricated grids whose answers are known: a claim that holds, one
that is contradicted, one that the test cannot decide, too few seeds to decide anything,
one seed, and parts that did not run; and the verdicts' error rate on simulated grids."""

import numpy as np
import pandas as pd
import pytest

from scopeloss.analysis import aggregate, claims, stats
from fakes import make_cls_run, make_rl_run

# final return per seed (one episode each, so the final return is that value)
# six seeds: the fewest with which an exact test can decide every comparison of claim A
# here (12 comparisons, Holm; seeds_needed)
SEEDS = (1, 2, 3, 4, 5, 6)
RETURNS = {  # env -> loss -> per-seed final returns
    "MinAtarBreakout": {"scope": [9.5, 10.0, 11.0, 12.0, 12.5, 11.5],
                        "policy": [1.0, 2.0, 3.0, 2.5, 1.5, 0.5],                   # beaten
                        "focal": [20.0, 21.0, 22.0, 20.5, 21.5, 19.5],              # wins
                        "policy_entropy": [2.0, 10.0, 20.0, 8.0, 14.0, 11.0]},      # overlaps
    "MinAtarAsterix": {"scope": [5.0, 6.0, 7.0, 5.5, 6.5, 7.5],
                       "policy": [1.0, 1.5, 2.0, 0.5, 2.5, 3.0],
                       "focal": [9.0, 9.5, 10.0, 10.5, 11.0, 8.5],
                       "policy_entropy": [1.0, 6.0, 12.0, 3.0, 9.0, 6.5]},
}
# final-phase entropy / max-action probability per loss (same for every seed and env, plus
# a little seed noise): Scope explores more than Policy (higher entropy, lower max prob),
# less than Policy+Entropy; the focal runs match Scope's entropy (inconclusive).
EXPLORATION = {"scope": (1.0, 0.5), "policy": (0.5, 0.8), "policy_entropy": (1.5, 0.3),
               "focal": (1.0, 0.5)}


def _rl_tables(tmp_path, seeds=SEEDS, envs=RETURNS):
    root, paths = tmp_path / "results", []
    rng = np.random.default_rng(0)
    for env, by_loss in envs.items():
        for loss, values in by_loss.items():
            ent, mp = EXPLORATION[loss]
            for seed, value in zip(seeds, values):
                # 8 updates; the first 6 are far off (they must not count: final phase is
                # the last quarter = 2 updates)
                noise = rng.normal(0, 0.01, 8) if loss != "focal" else (
                    [0.0] * 6 + [0.3 * (seed - 3.5)] * 2)
                entropy = np.r_[[5.0] * 6, [ent] * 2] + noise
                max_prob = np.r_[[0.05] * 6, [mp] * 2] + np.asarray(noise) / 10
                paths.append(make_rl_run(root, env, loss, seed, [value], total_steps=200_000,
                                         n_updates=8, entropy=entropy, max_prob=max_prob))
    out = tmp_path / "tables"
    aggregate.write_tables(out, aggregate.aggregate_rl(paths, reps=200)[0])
    return out


def _cls_tables(tables, tmp_path, seeds=SEEDS):
    root, paths = tmp_path / "results", []
    counts = [50, 20, 5]
    # per-run mean precision: Scope 0.6 (+-0.01 by seed), CE 0.4 (beaten), PEL 0.8 (wins)
    for exp, means in (("plain", {"scope": 0.6, "ce": 0.4, "pel": 0.8}),
                       ("augmented", {"scope": 0.6, "ce": 0.59, "focal": 0.61})):
        for loss, mean in means.items():
            for seed in seeds:
                p = mean + 0.01 * (seed - 3.5) * (1 if loss != "scope" else -1)
                paths.append(make_cls_run(root, "digits_lt", exp, loss, seed,
                                          [p - 0.1, p, p + 0.1], counts))
    aggregate.write_tables(tables, aggregate.aggregate_classification(paths)[0])
    return tables


def _lookup(table, claim_id, comparison, where, metric_start=""):
    sub = table[(table["claim_id"] == claim_id) & (table["comparison"] == comparison)
                & (table["where"] == where) & table["metric"].str.startswith(metric_start)]
    assert len(sub) == 1, (claim_id, comparison, where, metric_start, sub)
    return sub.iloc[0]


def test_verdict_rule():
    assert claims.verdict(2.0, 0.01, 0.002, n_seeds=6) == "supported"
    assert claims.verdict(-2.0, 0.01, 0.002, n_seeds=6) == "contradicted"
    assert claims.verdict(-2.0, 0.2, 0.002, n_seeds=6) == "inconclusive"
    assert claims.verdict(-2.0, 0.01, 0.002, n_seeds=6, direction=-1) == "supported"
    assert claims.verdict(0.8, 0.01, 0.002, n_seeds=6, null=0.5) == "supported"
    assert claims.verdict(0.2, 0.01, 0.002, n_seeds=6, null=0.5) == "contradicted"
    # 3 vs 3 seeds: the exact test's smallest p is 0.1; it cannot decide, whatever the data
    assert claims.verdict(9.0, 0.1, 0.1, n_seeds=3) == "underpowered"
    assert claims.verdict(1.0, np.nan, 1.0, n_seeds=1) == "inconclusive (one seed)"


def test_bootstrap_difference_by_hand():
    est, low, high = stats.bootstrap_difference_ci([10, 11, 12], [1, 2, 3], reps=4000)
    assert est == pytest.approx(9.0)
    assert 7.0 <= low < 9.0 < high <= 11.0  # range of resampled mean differences: [7, 11]
    est, low, high, n = stats.stratified_bootstrap_difference(
        {"a": [1.0, 1.0], "b": [3.0, 3.0]}, {"a": [0.0, 0.0], "b": [1.0, 1.0], "c": [9.0]},
        "Mean", reps=100)
    assert (est, low, high, n) == (pytest.approx(1.5), pytest.approx(1.5), pytest.approx(1.5), 2)


def test_return_claims_known_answers(tmp_path):
    table = claims.claims_table(_rl_tables(tmp_path), classification=False, reps=2000)
    row = _lookup(table, "A", "Scope vs Policy", "MinAtarBreakout")
    b = RETURNS["MinAtarBreakout"]
    assert row["estimate"] == pytest.approx(np.mean(b["scope"]) - np.mean(b["policy"]))
    assert row["verdict"] == "supported"
    assert row["n_seeds"] == 6 and row["budget"] == "200k steps"
    assert row["p"] == pytest.approx(2 / 924) and row["p_adj"] <= 0.05  # exact: C(12, 6)
    row = _lookup(table, "A", "Scope vs Focal", "MinAtarBreakout")
    assert row["estimate"] == pytest.approx(np.mean(b["scope"]) - np.mean(b["focal"]))
    assert row["verdict"] == "contradicted"
    row = _lookup(table, "A", "Scope vs Policy+Entropy", "MinAtarBreakout")
    assert row["ci_low"] < 0 < row["ci_high"] and row["verdict"] == "inconclusive"
    # aggregate over the two games: P(Scope > Policy) = 1 in both, IQM difference > 0
    agg = "aggregate (2 envs)"
    poi = _lookup(table, "A", "Scope vs Policy", agg, "P(")
    assert poi["estimate"] == pytest.approx(1.0) and poi["verdict"] == "supported"
    assert _lookup(table, "A", "Scope vs Focal", agg, "P(")["verdict"] == "contradicted"
    iqm = _lookup(table, "A", "Scope vs Policy", agg, "IQM")
    assert iqm["estimate"] > 0 and iqm["verdict"] == "supported"
    # MinAtar is normalised by fixed references (random policy, AC(lambda)), not the grid
    assert "min-max over this grid" not in str(iqm["note"])
    from scopeloss.analysis.reference import normalisation_range

    lo, hi = normalisation_range("MinAtarBreakout")
    assert (lo, hi) == (0.50, 17.5)


def test_exploration_claims_use_the_final_phase(tmp_path):
    table = claims.claims_table(_rl_tables(tmp_path), classification=False, reps=2000)
    ent = _lookup(table, "B", "Scope vs Policy", "MinAtarBreakout", "final-phase policy entropy")
    # the last 2 of 8 updates only: 1.0 - 0.5 (the early 5.0s would give 0 difference)
    assert ent["estimate"] == pytest.approx(0.5, abs=0.03) and ent["verdict"] == "supported"
    mp = _lookup(table, "B", "Scope vs Policy", "MinAtarBreakout", "final-phase mean max")
    assert mp["estimate"] == pytest.approx(-0.3, abs=0.01) and mp["verdict"] == "supported"
    mp = _lookup(table, "B", "Scope vs Policy+Entropy", "MinAtarAsterix", "final-phase mean max")
    assert mp["estimate"] == pytest.approx(0.2, abs=0.01) and mp["verdict"] == "contradicted"
    ent = _lookup(table, "B", "Scope vs Focal", "MinAtarBreakout", "final-phase policy entropy")
    assert ent["verdict"] == "inconclusive"
    poi = _lookup(table, "B", "Scope vs Policy", "aggregate (2 envs)", "P(Scope run's final-phase max")
    assert poi["estimate"] == pytest.approx(1.0) and poi["verdict"] == "supported"


def test_precision_claims_per_table(tmp_path):
    tables = _cls_tables(tmp_path / "tables", tmp_path)
    table = claims.claims_table(tables, rl=False, reps=2000)
    t1 = "digits_lt / plain (Table 1)"
    ce = _lookup(table, "C", "SL vs CEL", t1)
    assert ce["estimate"] == pytest.approx(0.2) and ce["verdict"] == "supported"
    assert _lookup(table, "C", "SL vs PEL", t1)["verdict"] == "contradicted"
    t2 = "digits_lt / augmented (Table 2)"
    assert _lookup(table, "C", "SL vs FL", t2)["verdict"] == "inconclusive"
    assert _lookup(table, "C", "SL vs CEL", t2)["budget"] == "2 epochs"
    # Table 1 rows come before Table 2 rows
    c = table[table["claim_id"] == "C"]
    assert list(c["where"]).index(t1) < list(c["where"]).index(t2)
    # RL switched off: the RL claims say 'not run'
    assert list(table.loc[table["claim_id"].isin(["A", "B"]), "verdict"]) == ["not run"] * 2


def test_few_shot_accuracy_rows_join_claim_c_and_its_holm_family(tmp_path):
    root, paths = tmp_path / "results", []
    # precision ties (inconclusive); few-shot accuracy: Scope 0.5, CE 0.2 (beaten)
    for loss, few in (("scope", 0.5), ("ce", 0.2)):
        for seed in SEEDS:
            p = 0.6 + 0.01 * (seed - 3.5) * (1 if loss == "ce" else -1)
            paths.append(make_cls_run(root, "digits_lt", "plain", loss, seed,
                                      [p - 0.1, p, p + 0.1], [50, 20, 5],
                                      few_shot=few + 0.01 * seed))
    tables = tmp_path / "tables"
    aggregate.write_tables(tables, aggregate.aggregate_classification(paths)[0])
    table = claims.claims_table(tables, rl=False, reps=2000)
    where = "digits_lt / plain (Table 1)"
    precision = _lookup(table, "C", "SL vs CEL", where, "mean per-class")
    few = _lookup(table, "C", "SL vs CEL", where, "few-shot")
    assert few["estimate"] == pytest.approx(0.3) and few["verdict"] == "supported"
    assert precision["verdict"] == "inconclusive"
    # one family: Holm over both rows (the smaller p doubled)
    assert few["p_adj"] == pytest.approx(min(1.0, 2 * few["p"]))
    from scopeloss.analysis.tables import write_shot_table

    write_shot_table(tables, tmp_path)
    text = (tmp_path / "shot_accuracy.md").read_text()
    assert "few below / many above 20 / 100" in text
    assert "| SL | 0.500 ± 0.000 | 0.450 ± 0.000 | 0.800 ± 0.000 | 0.600 ± 0.000 | 0.535 ± " in text
    # the last epoch's columns, labelled; runs written without them show a dash
    assert "| loss | top-1 | balanced | many | medium | few | top-1, last epoch | few, last " \
        "epoch |" in text and text.count("| — | — |") >= 2


def test_one_seed_says_so(tmp_path):
    one = {env: {loss: v[:1] for loss, v in by.items()} for env, by in RETURNS.items()}
    tables = _rl_tables(tmp_path, seeds=(1,), envs=one)
    _cls_tables(tables, tmp_path / "c", seeds=(1,))
    table = claims.claims_table(tables, reps=200)
    real = table[table["verdict"] != "not run"]
    assert len(real) and (real["verdict"] == "inconclusive (one seed)").all()
    assert real["ci_low"].isna().all() and (real["n_seeds"] == 1).all()
    md = claims.claims_markdown(table)
    assert "one seed" in md and "supported" not in md.split("## A.")[1]


def test_missing_parts_of_the_grid_give_not_run_rows(tmp_path, capsys):
    empty = tmp_path / "nothing"
    empty.mkdir()
    out = tmp_path / "out" / "claims.md"
    assert claims.main(["--tables", str(empty), "--out", str(out), "--reps", "50"]) == 0
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table["claim_id"]) == ["A", "B", "C", "D"]
    assert (table["verdict"] == "not run").all()
    text = out.read_text()
    assert "no RL runs in this grid" in text and "no classification runs" in text
    assert "no sweep in this grid (rl.sweeps, classification.sweeps)" in text
    # a grid without Scope: the RL claims cannot be tested
    root = tmp_path / "results"
    paths = [make_rl_run(root, "CartPole-v1", "policy", s, [1.0]) for s in (1, 2)]
    tables = tmp_path / "t2"
    aggregate.write_tables(tables, aggregate.aggregate_rl(paths, reps=10)[0])
    table = claims.claims_table(tables, classification=False, reps=50)
    assert list(table["note"][:2]) == ["no finished Scope run in this grid"] * 2


def test_unfinished_runs_do_not_count(tmp_path):
    root = tmp_path / "results"
    paths = [make_rl_run(root, "CartPole-v1", loss, s, [v + s])
             for loss, v in (("scope", 10.0), ("policy", 0.0)) for s in (1, 2)]
    paths.append(make_rl_run(root, "CartPole-v1", "policy", 3, [1000.0], finished=False))
    tables = tmp_path / "t"
    aggregate.write_tables(tables, aggregate.aggregate_rl(paths, reps=10)[0])
    row = _lookup(claims.claims_table(tables, classification=False, reps=500), "A",
                  "Scope vs Policy", "CartPole-v1")
    assert row["estimate"] == pytest.approx(10.0) and row["n_seeds"] == 2


def test_a_complete_env_without_a_finished_episode_is_named_not_dropped(tmp_path):
    """The smoke grid's Pong: every run complete, no episode ended (no final return): the
    aggregate row says it was left out and why (issue 29)."""
    root = tmp_path / "results"
    paths = [make_rl_run(root, "CartPole-v1", loss, s, [v + s])
             for loss, v in (("scope", 10.0), ("policy", 0.0)) for s in (1, 2)]
    paths += [make_rl_run(root, "Pong", loss, s, []) for loss in ("scope", "policy")
              for s in (1, 2)]
    tables = tmp_path / "t"
    aggregate.write_tables(tables, aggregate.aggregate_rl(paths, reps=10)[0])
    table = claims.claims_table(tables, classification=False, reps=500)
    row = _lookup(table, "A", "Scope vs Policy", "aggregate (1 env)", "IQM")
    assert "left out, no finished episode in any run: Pong" in row["note"]
