"""Loss variants and sweeps as grid cells (issue 28): the grid's losses, cells and labels,
claim D on simulated runs, and the sensitivity figure. The workflow run (a sweep three lines
long, only its cells train) is in tests/test_workflow_run.py."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from scopeloss import grid
from scopeloss.analysis import claims, figures, sensitivity_figure, tuning_claim
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

    cell = rl_config.resolve("Pong", "scope_hi", grid.rl_cell(cfg, "Pong", "scope_hi"),
                             games=False)
    assert cell.to_json()["loss"] == {"loss": "scope", "alpha": 0.1}  # the base, every parameter
    assert cell.loss.loss.name == "scope" and cell.loss.name == "scope_hi"
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


def claim_d(runs, members=MEMBERS, reps=2000):
    return claims.decide(tuning_claim.rl_rows(runs, members, margin=0.5, reps=reps, seed=0))


def test_claim_d_at_one_seed_per_cell_names_the_sweep_and_why_it_is_not_run():
    """One seed per cell has no within-cell spread to put the margin on: the row still names
    the comparison and says so (a smoke grid's sweep)."""
    (row,) = claim_d(_runs(np.random.default_rng(0), {}, n_seeds=1))
    assert row["verdict"] == claims.NOT_RUN
    assert row["comparison"] == "Scope: alpha=0.01 (default) vs 0.001, 0.1 (all 3 values)"
    assert "one seed per cell" in row["note"] and "E1, E2, E3" in row["note"]


def test_claim_d_contradicted_when_the_default_is_clearly_worse():
    (row,) = claim_d(_runs(np.random.default_rng(0), {"scope_alpha0.1": 4.0}))
    assert row["comparison"] == "Scope: alpha=0.01 (default) vs 0.001, 0.1 (all 3 values)"
    assert row["estimate"] < -3 and row["verdict"] == claims.CONTRADICTED


def test_claim_d_supported_only_with_evidence_of_non_inferiority():
    """Every value equal to the default: 30 seeds on 3 envs show it within 0.5 sd of both
    (supported); 3 seeds cannot (inconclusive, never supported from silence)."""
    big = claim_d(_runs(np.random.default_rng(1), {}, n_seeds=30))[0]
    assert big["verdict"] == claims.SUPPORTED, big["note"]
    small = claim_d(_runs(np.random.default_rng(1), {}, n_seeds=3))[0]
    assert small["verdict"] == claims.INCONCLUSIVE and small["p_adj"] > 0.05


def test_claim_d_a_default_worse_than_one_value_is_not_supported():
    """The default 1 sd worse than alpha=0.1 and equal to 0.001, at the sensitivity design
    (5 envs x 3 seeds): supported in at most 5 % of 100 simulated grids (+ 3 Monte Carlo
    standard errors). The previous rule ("not significantly worse than the best") called it
    supported in about half of them."""
    rng = np.random.default_rng(5)
    envs = ("E1", "E2", "E3", "E4", "E5")
    supported = sum(claim_d(_runs(rng, {"scope": -1.0}, n_seeds=3, envs=envs)
                            .query("loss != 'policy'"), reps=500)[0]["verdict"]
                    == claims.SUPPORTED for _ in range(100))
    assert supported / 100 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 100)


def test_claim_d_underpowered_when_the_design_cannot_decide():
    (row,) = claim_d(_runs(np.random.default_rng(2), {}, n_seeds=2, envs=("E1",)), reps=500)
    assert row["verdict"] == claims.UNDERPOWERED  # 2 vs 2 seeds, one env: p >= 1/6
    assert "needs 4 seeds per value" in row["note"]  # 1/C(8,4) = 0.014 <= 0.025


def test_claim_d_names_an_overlays_default():
    members = [{**m, "registered": 0.01} for m in MEMBERS]
    members = [{**m, "default": m["value"] == 0.1, "name": {0.1: "scope", 0.01: "scope_alpha0.01"}
                .get(m["value"], m["name"])} for m in members]
    runs = _runs(np.random.default_rng(0), {}).replace({"scope": "scope_alpha0.01",
                                                          "scope_alpha0.1": "scope"})
    (row,) = claim_d(runs, members)
    assert "alpha=0.1 (the grid's default; registered 0.01)" in row["comparison"]


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


def test_the_sensitivity_figure_draws_raw_returns_and_the_registered_default(tmp_path):
    """Per env the raw final return (a 1-return difference stays 1, never stretched to the
    panel's full scale by a min-max over the grid's runs); the last panel on claim D's sd
    scale with the margin; the ring on the registered default."""
    runs = _runs(np.random.default_rng(4), {"scope_alpha0.1": 4.0}, n_seeds=3)
    tables = tmp_path / "tables"
    tables.mkdir()
    runs.to_csv(tables / "rl_final_runs.csv", index=False)
    members = [{**m, "registered": 0.01} for m in MEMBERS]
    info = sensitivity_figure.plot_sensitivity(tables, tmp_path / "fig.png", members)
    points = info["points"]
    assert info["panels"] == ["E1", "E2", "E3", "all"]
    e1 = points[points["task"] == "E1"].set_index("value")
    raw = runs[(runs["env"] == "E1") & (runs["loss"] == "scope")]["final_return"]
    assert e1.loc[0.01, "y"] == pytest.approx(raw.mean())  # raw, not normalised
    assert list(e1.index) == [0.001, 0.01, 0.1] and bool(e1.loc[0.01, "registered"])
    assert e1.loc[0.1, "y"] - e1.loc[0.01, "y"] == pytest.approx(4.0, abs=1.5)
    assert (e1["n_runs"] == 3).all() and (e1["low"] <= e1["y"]).all()
    scale = points[points["task"] == "all"].set_index("value")
    assert scale.loc[0.01, "y"] == 0.0 and scale.loc[0.1, "y"] > 2  # 4 returns / sd ~1
    with Image.open(tmp_path / "fig.png") as img:
        desc = img.info["Description"]
    assert "panels: E1, E2, E3, all" in desc and "values: 0.001, 0.01, 0.1" in desc
    assert "y: final return (raw score)" in desc and "overlay default" not in desc
    assert "left out" not in desc and info["left_out"] == []
    # an env whose runs ended before an episode did: no panel, named as left out
    unfinished = runs[runs["env"] == "E1"].assign(env="E0", final_return=np.nan)
    pd.concat([runs, unfinished]).to_csv(tables / "rl_final_runs.csv", index=False)
    info = sensitivity_figure.plot_sensitivity(tables, tmp_path / "fig.png", members)
    assert info["panels"] == ["E1", "E2", "E3", "all"] and info["left_out"] == ["E0"]
    with Image.open(tmp_path / "fig.png") as img:
        assert "; left out: E0" in img.info["Description"]
    runs.to_csv(tables / "rl_final_runs.csv", index=False)
    # an overlay that runs Scope at 0.1: the ring stays on the registered 0.01, said so
    moved = [{**m, "default": m["value"] == 0.1} for m in members]
    sensitivity_figure.plot_sensitivity(tables, tmp_path / "moved.png", moved)
    with Image.open(tmp_path / "moved.png") as img:
        assert "overlay default: Scope runs with alpha=0.1 (registered 0.01)" in \
            img.info["Description"]
    assert (tmp_path / "fig.pdf").exists() and (tmp_path / "fig.csv").exists()


def test_classification_sweeps_get_their_figure(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"dataset": "numbers_lt", "experiment": e, "loss": loss, "seed": s,
             "status": "complete", "precision_mean": rng.normal(0.6, 0.02)}
            for e in ("plain", "augmented") for loss in ("pel", "pel_alpha0.05")
            for s in range(3)]
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame(rows).to_csv(tables / "classification_summary.csv", index=False)
    members = [{"swept": "pel", "param": "alpha", "value": v, "name": n, "default": d,
                "registered": 8e-6} for v, n, d in ((8e-6, "pel", True),
                                                    (0.05, "pel_alpha0.05", False))]
    assert figures.main(["sensitivity", "--half", "classification", "--tables", str(tables),
                         "--out", str(tmp_path / "cls.png"), "--sweeps",
                         json.dumps({"classification": members})]) == 0
    with Image.open(tmp_path / "cls.png") as img:
        desc = img.info["Description"]
    assert "panels: numbers_lt / augmented, numbers_lt / plain, all" in desc
    assert "y: mean per-class test precision" in desc
