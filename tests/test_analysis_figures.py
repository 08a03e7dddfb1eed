"""Figure 2 and the aggregate figure from fabricated runs: files written, one panel per
environment in the paper's order, smoothing and aggregate numbers checked by hand."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from scopeloss.analysis import aggregate, figures
from scopeloss.analysis.runs import RunFileError
from test_analysis_fakes import make_rl_run


def _description(png):
    with Image.open(png) as img:
        return img.text["Description"]


@pytest.fixture()
def tables(tmp_path):
    root, rng, runs = tmp_path / "results", np.random.default_rng(0), []
    # envs given out of order, plus a Gymnasium env with no reference score
    for env, scale in (("StarPilot", 20.0), ("CartPole-v1", 200.0), ("Pong", 30.0),
                       ("Breakout", 100.0)):
        for loss, gain in (("focal", 0.8), ("scope", 1.2), ("policy", 1.0)):
            for seed in (1, 2):
                n = 120
                steps = np.sort(rng.integers(1, 50_000, n))
                ret = scale * gain * steps / 50_000 + rng.normal(0, 0.05 * scale, n)
                runs.append(make_rl_run(root, env, loss, seed, ret, steps, total_steps=50_000))
    runs.append(root / "rl" / "Pong" / "policy_entropy" / "seed1")  # nothing logged yet
    out = tmp_path / "tables"
    aggregate.write_tables(out, aggregate.aggregate_rl(runs, reps=500)[0])
    return out


def test_training_curves_one_panel_per_env_in_paper_order(tables, tmp_path):
    out = tmp_path / "figures" / "rl_training_curves.png"
    info = figures.plot_training_curves(tables, out, window=10, reps=200)
    assert info["panels"] == ["Pong", "Breakout", "StarPilot", "CartPole-v1"]
    assert info["losses"] == ["policy", "policy_entropy", "scope", "focal"]
    assert info["missing"] == [("Pong", "policy_entropy", 1)]
    pdf = out.with_suffix(".pdf")
    assert out.stat().st_size > 10_000 and pdf.stat().st_size > 1_000
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert _description(out).startswith("panels: Pong, Breakout, StarPilot, CartPole-v1;")
    with Image.open(out) as img:
        assert img.size[0] >= 1200  # ~7 in at 200 dpi: readable at paper width


def test_each_loss_has_its_own_colour_and_dash_pattern():
    # Coinciding curves (same seed, losses that barely differ early on) must stay visible.
    from scopeloss.analysis.reference import RL_LOSS_COLORS, RL_LOSS_DASHES
    assert set(RL_LOSS_DASHES) == set(RL_LOSS_COLORS)
    assert len({str(d) for d in RL_LOSS_DASHES.values()}) == len(RL_LOSS_DASHES)
    assert len(set(RL_LOSS_COLORS.values())) == len(RL_LOSS_COLORS)


def test_smoothing_on_the_step_grid_by_hand():
    eps = pd.DataFrame({"seed": [1, 1, 1, 2], "global_step": [10, 20, 30, 5],
                        "return": [0.0, 10.0, 20.0, 4.0]})
    grid = np.array([0.0, 10.0, 15.0, 20.0, 30.0, 40.0])
    curves = figures.smoothed_curves(eps, {1: 30, 2: 40}, grid, window=2)
    # seed 1: rolling mean over 2 episodes = 0, 5, 15; NaN before the first episode and
    # past its horizon (30). seed 2: one episode at step 5, held to its horizon (40).
    np.testing.assert_allclose(curves[0], [np.nan, 0.0, 0.0, 5.0, 15.0, np.nan])
    np.testing.assert_allclose(curves[1], [np.nan, 4.0, 4.0, 4.0, 4.0, 4.0])


def test_aggregate_statistics_by_hand():
    runs = pd.DataFrame({
        "env": ["Pong"] * 4 + ["Breakout"] * 4 + ["CartPole-v1"] * 2,
        "loss": ["scope", "scope", "policy", "policy"] * 2 + ["scope", "policy"],
        "normalized_final_return": [0.9, 0.1, 0.2, 0.3, 2.0, 1.0, 0.5, 0.0, np.nan, np.nan],
    })
    table = figures.aggregate_statistics(runs, reps=2000).set_index(["metric", "loss"])
    # Scope's 4 scores 0.1 0.9 1.0 2.0: IQM = mean(0.9, 1.0); mean = 1.0
    assert table.loc[("IQM", "scope"), "estimate"] == pytest.approx(0.95)
    assert table.loc[("Mean", "scope"), "estimate"] == pytest.approx(1.0)
    assert table.loc[("IQM", "policy"), "estimate"] == pytest.approx(0.25)
    assert table.loc[("Mean", "scope"), "n_tasks"] == 2  # CartPole has no reference score
    poi = table.loc[("P(improvement)", "scope")]
    # Pong: 0.9 beats both, 0.1 neither -> 1/2; Breakout: all 4 pairs won -> 1
    assert poi["other"] == "policy" and poi["estimate"] == pytest.approx(0.75)
    assert poi["ci_low"] <= 0.75 <= poi["ci_high"]


def test_aggregate_figure_and_its_numbers(tables, tmp_path):
    out = tmp_path / "figures" / "rl_aggregate.png"
    assert figures.main(["aggregate", "--tables", str(tables), "--out", str(out),
                         "--reps", "500"]) == 0
    assert out.stat().st_size > 10_000
    assert _description(out) == ("panels: IQM, Mean, P(Scope > X); tasks: Pong, Breakout, "
                                 "StarPilot")
    numbers = pd.read_csv(out.with_suffix(".csv"))
    assert set(numbers["metric"]) == {"IQM", "Mean", "P(improvement)"}
    assert set(numbers.loc[numbers["metric"] == "P(improvement)", "other"]) == {"policy",
                                                                                 "focal"}
    runs = pd.read_parquet(tables / "rl_final_runs.parquet")
    scope = runs[(runs["loss"] == "scope")].dropna(subset=["normalized_final_return"])
    mean = numbers[(numbers["metric"] == "Mean") & (numbers["loss"] == "scope")]
    assert mean["estimate"].item() == pytest.approx(scope["normalized_final_return"].mean())


def test_figures_cli_names_a_missing_table(tmp_path, capsys):
    assert figures.main(["curves", "--tables", str(tmp_path), "--out",
                         str(tmp_path / "f.png")]) == 1
    assert "rl_episodes.parquet (or .csv) not found" in capsys.readouterr().err
    with pytest.raises(RunFileError, match="rl_final_runs"):
        figures.plot_aggregate(tmp_path, tmp_path / "a.png")
