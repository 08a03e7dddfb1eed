"""Beside the final score, each RL run's best window over training, labelled and kept out
of the claims; and what each loss costs per step, from the runs' own timings, in the
tables and in claims.md (issue 39, items 2 and 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scopeloss.analysis import aggregate, claims, loss_cost
from scopeloss.analysis.runs import best_return

from fakes import make_cls_run, make_rl_run


def test_best_window_by_hand():
    episodes = pd.DataFrame({"global_step": [1, 2, 3, 4, 5],
                             "return": [1.0, 9.0, 7.0, 2.0, 0.0]})
    assert best_return(episodes, window=2) == pytest.approx(8.0)  # episodes 2 and 3
    assert best_return(episodes, window=10) == pytest.approx(3.8)  # fewer: all of them
    episodes["truncated_by_resume"] = [0, 1, 0, 0, 0]  # cut by a resume: not an episode
    assert best_return(episodes, window=2) == pytest.approx(4.5)
    assert np.isnan(best_return(episodes.iloc[:0], window=2))


@pytest.fixture()
def timed_grid(tmp_path):
    """Two envs x three losses x two seeds on one device; per update, scope takes 1.2 and
    focal 1.5 times policy's on Pong, 1.1 and 1.5 on CartPole."""
    times = {("Pong", "policy"): 1.0, ("Pong", "scope"): 1.2, ("Pong", "focal"): 1.5,
             ("CartPole", "policy"): 2.0, ("CartPole", "scope"): 2.2,
             ("CartPole", "focal"): 3.0}
    paths = []
    for (env, loss), per_update in times.items():
        for seed in (1, 2):
            returns = [0.0, 10.0, 4.0] + [1.0 * seed] * 3
            paths.append(make_rl_run(tmp_path, env, loss, seed, returns, n_updates=4,
                                     update_s=4 * per_update * (1 + 0.02 * seed)))
    # a run on another device is no part of any ratio
    paths.append(make_rl_run(tmp_path, "Pong", "focal", 3, [1.0], n_updates=4, update_s=400.0,
                             device="a much slower machine"))
    return paths


def test_rl_tables_carry_best_and_the_step_cost(timed_grid):
    tables, _ = aggregate.aggregate_rl(timed_grid, reps=200)
    runs, final = tables["rl_final_runs"], tables["rl_final"].set_index(["env", "loss"])
    pong = runs[(runs["env"] == "Pong") & (runs["loss"] == "scope") & (runs["seed"] == 1)]
    # 6 episodes, fewer than the window of 100: the best window and the final are all six
    assert pong["final_return"].item() == pytest.approx(np.mean([0, 10, 4, 1, 1, 1]))
    assert pong["best_return"].item() == pong["final_return"].item()
    assert pong["best_return_window"].item() == 6
    assert pong["update_time_s"].item() == pytest.approx(1.2 * 1.02)
    assert final.loc[("Pong", "scope"), "best_return_mean"] >= \
        final.loc[("Pong", "scope"), "final_return_mean"]
    assert final.loc[("Pong", "scope"), "update_time_vs_policy"] == pytest.approx(1.2)
    assert final.loc[("CartPole", "focal"), "update_time_vs_policy"] == pytest.approx(1.5)
    assert final.loc[("Pong", "policy"), "update_time_vs_policy"] == pytest.approx(1.0)
    costs = loss_cost.relative_costs(runs, "rl").set_index("loss")
    assert costs.loc["scope", "relative_cost"] == pytest.approx(np.median([1.2, 1.1]))
    assert costs.loc["focal", "relative_cost"] == pytest.approx(1.5)
    assert costs.loc["focal", "n_runs"] == 4 and costs.loc["focal", "n_tasks"] == 2
    assert costs.loc["focal", "device_name"] == "cpu (test)"


def test_claims_md_says_what_each_loss_costs(timed_grid, tmp_path):
    cls_paths = []
    for loss, rate in (("ce", 100.0), ("scope", 80.0)):
        for seed in (1, 2):
            cls_paths.append(make_cls_run(tmp_path, "digits_lt", "plain", loss, seed,
                                          [0.5, 0.6], [30, 10], images_per_s=(rate, rate)))
    tables = tmp_path / "tables"
    aggregate.write_tables(tables, aggregate.aggregate_rl(timed_grid, reps=200)[0])
    aggregate.write_tables(tables, aggregate.aggregate_classification(cls_paths)[0])
    summary = pd.read_csv(tables / "classification_summary.csv").set_index(["loss", "seed"])
    assert summary.loc[("ce", 1), "seconds_per_image"] == pytest.approx(0.01)
    assert summary.loc[("scope", 2), "seconds_per_image"] == pytest.approx(0.0125)
    text = claims.claims_markdown(claims.claims_table(tables, reps=200))
    section = text.split("## What each loss costs per step", 1)[1]
    assert "rl, time per update over Policy's (median over 2 task(s), cpu (test)): " \
        "Scope 1.15x, Focal 1.50x." in section, section
    assert "classification, time per training image over CEL's (median over 1 task(s), " \
        "cpu (test)): SL 1.25x." in section, section
    assert "never on the best over training" in section
