"""Loss variants and sweeps as grid cells (issue 28): the grid's losses, cells and labels,
claim D on simulated runs, and the sensitivity figure. The workflow run (a sweep three lines
long, only its cells train) is in tests/test_workflow_run.py."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from scopeloss import grid
from scopeloss.analysis import claims, figures
from scopeloss.analysis.runs import COMPLETE


@pytest.fixture(scope="module")
def paper():
    return grid.load_config("config.yaml")


SWEEP = {"rl": {"losses": ["policy", "scope"],
                "sweeps": {"scope": {"alpha": [0.001, 0.01, 0.1]}}}}


def test_a_sweep_adds_its_variants_after_the_grids_losses(paper):
    cfg = grid.merge(paper, SWEEP)
    grid.check_config(cfg)
    assert grid.grid_losses(cfg, "rl") == ["policy", "scope", "scope_alpha0.001",
                                           "scope_alpha0.1"]
    assert grid.rl_cell(cfg, "Pong", "scope")["loss"] == {"alpha": 0.01}  # the default: scope's own cell
    assert grid.rl_cell(cfg, "Pong", "scope_alpha0.1")["loss"] == {"loss": "scope",
                                                                  "alpha": 0.1}
    assert grid.base_loss(cfg, "rl", "scope_alpha0.001") == "scope"
    assert grid.variant_labels(cfg, "rl") == {"scope_alpha0.001": "Scope (alpha=0.001)",
                                              "scope_alpha0.1": "Scope (alpha=0.1)"}
    members = json.loads(grid.sweeps_json(cfg))["rl"]
    assert [(m["name"], m["value"], m["default"]) for m in members] == [
        ("scope_alpha0.001", 0.001, False), ("scope", 0.01, True),
        ("scope_alpha0.1", 0.1, False)]
    # the cells of the grid without the sweep are the same cells (nothing reruns)
    plain = grid.merge(paper, {"rl": {"losses": ["policy", "scope"]}})
    assert grid.rl_cell(plain, "Pong", "scope") == grid.rl_cell(cfg, "Pong", "scope")
    assert len(grid.rl_runs(cfg)) == len(grid.rl_runs(plain)) + 2 * 8 * 3


def test_a_sweep_leaving_out_the_default_still_compares_with_it(paper):
    cfg = grid.merge(paper, {"classification": {"sweeps": {"pel": {"alpha": [0.05]}}}})
    members = json.loads(grid.sweeps_json(cfg))["classification"]
    assert [(m["name"], m["value"], m["default"]) for m in members] == [
        ("pel_alpha0.05", 0.05, False), ("pel", 8e-6, True)]
    assert grid.grid_losses(cfg, "classification")[-1] == "pel_alpha0.05"


def test_a_named_variant_is_a_loss_of_its_own(paper):
    cfg = grid.merge(paper, {"rl": {"losses": ["scope", "scope_hi"],
                                    "loss_specs": {"scope_hi": {"loss": "scope",
                                                                "alpha": 0.1}},
                                    "candidate": "scope_hi"}})
    grid.check_config(cfg)
    assert grid.rl_cell(cfg, "Pong", "scope_hi")["loss"] == {"loss": "scope", "alpha": 0.1}
    from scopeloss.rl import config as rl_config

    hp = rl_config.resolve("Pong", "scope_hi", grid.rl_cell(cfg, "Pong", "scope_hi"),
                           games=False)
    assert hp["loss"] == {"loss": "scope", "alpha": 0.1}  # the base and every parameter
    with pytest.raises(grid.ConfigError, match="loss: the variant name 'focal' shadows"):
        rl_config.resolve("Pong", "focal", {"loss": {"loss": "scope"}}, games=False)


@pytest.mark.parametrize("overlay, message", [
    ({"sweeps": {"scope": {"alpha": [0.1, 0.1]}}}, "rl.sweeps.scope.alpha: a value is given twice"),
    ({"sweeps": {"scope": {}}}, "rl.sweeps.scope: must map a parameter of 'scope'"),
    ({"sweeps": {"scope": {"alpha": [0.1]}},
      "loss_specs": {"scope_alpha0.1": {"loss": "scope", "alpha": 0.2}}},
     "the variant it makes for alpha = 0.1, 'scope_alpha0.1', is already a loss of another"),
    ({"candidate": "nope"}, "config key rl.candidate: unknown PPO policy loss 'nope'"),
])
def test_bad_sweeps_and_variants_name_the_key(paper, overlay, message):
    with pytest.raises(grid.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grid.check_config(grid.merge(paper, {"rl": overlay}))


# ----------------------------------------------------------------------------- claim D
MEMBERS = [{"swept": "scope", "param": "alpha", "value": v, "name": n, "default": d}
           for v, n, d in ((0.001, "scope_alpha0.001", False), (0.01, "scope", True),
                           (0.1, "scope_alpha0.1", False))]


def _runs(rng, shift: dict, n_seeds: int = 5, envs=("E1", "E2", "E3")) -> pd.DataFrame:
    rows = []
    for i, env in enumerate(envs):
        for loss in ("policy", "scope", "scope_alpha0.001", "scope_alpha0.1"):
            for seed in range(n_seeds):
                value = 10 * (i + 1) + rng.normal() + shift.get(loss, 0.0)
                rows.append({"env": env, "loss": loss, "seed": seed, "final_return": value,
                             "normalized_final_return": np.nan, "total_steps": 100_000,
                             "status": COMPLETE})
    return pd.DataFrame(rows)


def test_claim_d_contradicted_when_the_default_is_clearly_worse():
    rows = claims.decide(claims.rl_sweep_claims(
        _runs(np.random.default_rng(0), {"scope_alpha0.1": 4.0}), MEMBERS, reps=2000, seed=0))
    (row,) = rows
    assert row["comparison"] == "Scope: alpha=0.01 (default) vs 0.1 (best of 2)"
    assert row["estimate"] < 0 and row["verdict"] == claims.CONTRADICTED


def test_claim_d_supported_when_no_value_is_better():
    rows = claims.decide(claims.rl_sweep_claims(_runs(np.random.default_rng(1), {}), MEMBERS,
                                                reps=2000, seed=0))
    assert rows[0]["verdict"] == claims.SUPPORTED


def test_claim_d_underpowered_when_the_design_cannot_decide():
    rows = claims.decide(claims.rl_sweep_claims(
        _runs(np.random.default_rng(2), {"scope_alpha0.1": 4.0}, n_seeds=2, envs=("E1",)),
        MEMBERS, reps=500, seed=0))
    assert rows[0]["verdict"] == claims.UNDERPOWERED  # 2 vs 2 seeds, one env: p >= 1/3


def test_the_claims_table_keeps_sweep_variants_out_of_claims_a_to_c(tmp_path):
    runs = _runs(np.random.default_rng(3), {"scope_alpha0.1": 4.0})
    runs["episodes"], runs["n_seeds"] = 100, 1
    tables = tmp_path / "tables"
    tables.mkdir()
    runs.to_csv(tables / "rl_final_runs.csv", index=False)
    table = claims.claims_table(tables, classification=False, reps=500,
                                sweeps={"rl": MEMBERS})
    a = table[table["claim_id"] == "A"]
    assert set(a["comparison"]) == {"Scope vs Policy"}
    assert list(table.loc[table["claim_id"] == "D", "verdict"]) == [claims.CONTRADICTED]


def test_the_sensitivity_figure_draws_every_value_per_env(tmp_path):
    runs = _runs(np.random.default_rng(4), {"scope_alpha0.1": 4.0}, n_seeds=3)
    tables = tmp_path / "tables"
    tables.mkdir()
    runs.to_csv(tables / "rl_final_runs.csv", index=False)
    info = figures.plot_sensitivity(tables, tmp_path / "fig.png", MEMBERS)
    points = info["points"]
    assert info["panels"] == ["E1", "E2", "E3", "all envs"]
    e1 = points[points["env"] == "E1"].set_index("value")
    assert list(e1.index) == [0.001, 0.01, 0.1] and bool(e1.loc[0.01, "default"])
    # grid min-max per env: the shifted value's seeds lie highest
    assert e1.loc[0.1, "score"] > e1.loc[0.01, "score"] and (e1["n_runs"] == 3).all()
    assert (e1["low"] <= e1["score"]).all() and (e1["score"] <= e1["high"]).all()
    with Image.open(tmp_path / "fig.png") as img:
        desc = img.info["Description"]
    assert "panels: E1, E2, E3, all envs" in desc and "values: 0.001, 0.01, 0.1" in desc
    assert (tmp_path / "fig.pdf").exists() and (tmp_path / "fig.csv").exists()
