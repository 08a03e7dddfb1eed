"""Figure 2 and the aggregate figure from fabricated runs: files written, one panel per
environment in the paper's order, smoothing and aggregate numbers checked by hand."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from scopeloss.analysis import aggregate, aggregate_figure, exploration_figure, figures, plotting
from scopeloss.analysis.figures import plt  # pyplot, on the Agg backend figures sets
from scopeloss.analysis.runs import RunFileError
from fakes import make_rl_run


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


BUILTIN_PPO = ("policy", "policy_entropy", "scope", "focal", "weighted_policy", "resampled_policy")


def test_each_loss_has_its_own_colour_and_dash_pattern():
    # Coinciding curves (same seed, losses that barely differ early on) must stay visible:
    # every registered policy loss, built-in or a user's, has its own colour and dash.
    from scopeloss import registry
    from scopeloss.losses import register_ppo_loss

    with registry.restored():
        for name in ("mine_a", "mine_b"):
            register_ppo_loss(name)(lambda logits, actions, old_logprob, advantages, *, clip_coef: 0)
        styles = registry.styles("ppo")
        assert len({s["color"] for s in styles.values()}) == len(styles) == 8
        builtin_dashes = {str(s["dash"]) for n, s in styles.items() if n in BUILTIN_PPO}
        assert len(builtin_dashes) == len(BUILTIN_PPO) == 6


def test_smoothing_on_the_step_grid_by_hand():
    eps = pd.DataFrame({"seed": [1, 1, 1, 2], "global_step": [10, 20, 30, 5],
                        "return": [0.0, 10.0, 20.0, 4.0]})
    grid = np.array([0.0, 10.0, 15.0, 20.0, 30.0, 40.0])
    curves = plotting.smoothed_curves(eps, {1: 30, 2: 40}, grid, window=2)
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
    table = aggregate_figure.aggregate_statistics(runs, reps=2000).set_index(["metric", "loss"])
    # Scope's 4 scores 0.1 0.9 1.0 2.0: IQM = mean(0.9, 1.0); mean = 1.0
    assert table.loc[("IQM", "scope"), "estimate"] == pytest.approx(0.95)
    assert table.loc[("Mean", "scope"), "estimate"] == pytest.approx(1.0)
    assert table.loc[("IQM", "policy"), "estimate"] == pytest.approx(0.25)
    assert table.loc[("Mean", "scope"), "n_tasks"] == 2  # CartPole has no reference score
    # optimality gap: 1 - mean(min(score, 1)) = 1 - (0.9 + 0.1 + 1 + 1) / 4
    assert table.loc[("Optimality gap", "scope"), "estimate"] == pytest.approx(0.25)
    assert table.loc[("Optimality gap", "policy"), "estimate"] == pytest.approx(0.75)
    poi = table.loc[("P(improvement)", "scope")]
    # Pong: 0.9 beats both, 0.1 neither -> 1/2; Breakout: all 4 pairs won -> 1
    assert poi["other"] == "policy" and poi["estimate"] == pytest.approx(0.75)
    assert poi["ci_low"] <= 0.75 <= poi["ci_high"]


def test_aggregate_figure_and_its_numbers(tables, tmp_path):
    out = tmp_path / "figures" / "rl_aggregate.png"
    assert figures.main(["aggregate", "--tables", str(tables), "--out", str(out),
                         "--reps", "500"]) == 0
    assert out.stat().st_size > 10_000
    # CartPole has no reference score: min-max normalised over the grid's runs of it
    assert _description(out) == ("panels: IQM, Mean, P(Scope > X); tasks: Pong, Breakout, "
                                 "StarPilot, CartPole-v1")
    numbers = pd.read_csv(out.with_suffix(".csv"))
    assert set(numbers["metric"]) == {"IQM", "Mean", "Optimality gap", "P(improvement)"}
    assert set(numbers.loc[numbers["metric"] == "P(improvement)", "other"]) == {"policy",
                                                                                 "focal"}
    runs = pd.read_parquet(tables / "rl_final_runs.parquet").dropna(subset=["final_return"])
    cart = runs["env"] == "CartPole-v1"
    lo, hi = runs.loc[cart, "final_return"].min(), runs.loc[cart, "final_return"].max()
    runs.loc[cart, "normalized_final_return"] = (runs.loc[cart, "final_return"] - lo) / (hi - lo)
    scope = runs[runs["loss"] == "scope"]
    mean = numbers[(numbers["metric"] == "Mean") & (numbers["loss"] == "scope")]
    assert mean["estimate"].item() == pytest.approx(scope["normalized_final_return"].mean())


def test_performance_profiles_beside_the_aggregate_figure(tables, tmp_path):
    out, profile = tmp_path / "rl_aggregate.png", tmp_path / "rl_performance_profile.png"
    assert figures.main(["aggregate", "--tables", str(tables), "--out", str(out),
                         "--reps", "300", "--profile-out", str(profile)]) == 0
    assert profile.stat().st_size > 10_000
    assert _description(profile) == "performance profiles: Policy, Scope, Focal"
    curves = pd.read_csv(profile.with_suffix(".csv"))
    aggregate = pd.read_csv(out.with_suffix(".csv"))
    for loss, curve in curves.groupby("loss"):
        # a fraction of runs above a rising threshold can only fall, within its band
        assert curve["fraction"].is_monotonic_decreasing, loss
        assert (curve["ci_low"] <= curve["fraction"] + 1e-12).all()
        assert (curve["fraction"] <= curve["ci_high"] + 1e-12).all()
        # the area under a profile from 0 is the mean score (for scores >= 0): the same
        # numbers as the aggregate figure's
        n = curve["n_runs"].iloc[0]
        assert curve["fraction"].iloc[-1] <= 1 / n or curve["tau"].iloc[-1] > 0
        mean = aggregate[(aggregate["metric"] == "Mean") & (aggregate["loss"] == loss)]
        tau, frac = curve["tau"].to_numpy(), curve["fraction"].to_numpy()
        if tau[0] == 0:
            area = float(np.sum(frac[:-1] * np.diff(tau)))
            assert area == pytest.approx(mean["estimate"].item(), abs=np.diff(tau)[0] + 1e-9)


def test_figures_cli_names_a_missing_table(tmp_path, capsys):
    assert figures.main(["curves", "--tables", str(tmp_path), "--out",
                         str(tmp_path / "f.png")]) == 1
    assert "rl_episodes.parquet (or .csv) not found" in capsys.readouterr().err
    with pytest.raises(RunFileError, match="rl_final_runs"):
        aggregate_figure.plot_aggregate(tmp_path, tmp_path / "a.png")


# ----------------------------------------------------------------------------- exploration
def _line(fig, gid):
    lines = [l for ax in fig.axes for l in ax.get_lines() if l.get_gid() == gid]
    assert len(lines) == 1, gid
    return lines[0]


@pytest.fixture()
def exploration_tables(tmp_path):
    root, runs = tmp_path / "results", []
    # 4 updates at steps 250, 500, 750, 1000; entropy falls for Policy, stays up for Scope
    per_seed = {("policy", 1): ([1.0, 0.8, 0.6, 0.4], [0.5, 0.6, 0.7, 0.8]),
                ("policy", 2): ([1.0, 0.8, 0.6, 0.2], [0.5, 0.6, 0.7, 0.9]),
                ("scope", 1): ([1.0, 1.0, 0.9, 0.9], [0.5, 0.5, 0.55, 0.55]),
                ("scope", 2): ([1.0, 1.0, 0.9, 0.7], [0.5, 0.5, 0.55, 0.65])}
    for env in ("MinAtarAsterix", "MinAtarBreakout"):
        for (loss, seed), (ent, mp) in per_seed.items():
            runs.append(make_rl_run(root, env, loss, seed, [1.0, 2.0], total_steps=1000,
                                    n_updates=4, entropy=ent, max_prob=mp))
    out = tmp_path / "tables"
    aggregate.write_tables(out, aggregate.aggregate_rl(runs, reps=50)[0])
    return out


def test_exploration_figure_plots_the_mean_across_seeds(exploration_tables):
    updates = pd.read_parquet(exploration_tables / "rl_updates.parquet")
    runs = pd.read_parquet(exploration_tables / "rl_final_runs.parquet")
    fig, info = exploration_figure.exploration_figure(updates, runs, window=1, points=5, reps=200)
    try:
        assert info["envs"] == ["MinAtarBreakout", "MinAtarAsterix"]  # the paper's order
        assert len(fig.axes) == 6
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["Policy entropy (nats)", "Mean max-action probability",
                          "Commonest action's share", "", "", ""]
        assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["MinAtarBreakout", "MinAtarAsterix"]
        # grid 0, 250, 500, 750, 1000: before the first update nothing, then the value of
        # the last update logged, averaged over the two seeds
        ent = _line(fig, "MinAtarBreakout/policy/entropy")
        np.testing.assert_allclose(ent.get_xdata(), [0, 250, 500, 750, 1000])
        np.testing.assert_allclose(ent.get_ydata(), [np.nan, 1.0, 0.8, 0.6, 0.3])
        mp = _line(fig, "MinAtarAsterix/scope/max_prob")
        np.testing.assert_allclose(mp.get_ydata(), [np.nan, 0.5, 0.5, 0.55, 0.6])
        assert ent.get_label() == "Policy" and mp.get_label() == "Scope"
        # the band: two seeds, so the bootstrap band spans their values at the last point
        band = [c for c in fig.axes[0].collections][0].get_paths()[0].vertices[:, 1]
        assert band.min() == pytest.approx(0.2) and band.max() == pytest.approx(1.0)
    finally:
        plt.close(fig)


def test_exploration_axes_show_flat_curves_without_offset_labels(tmp_path):
    """A smoke-sized run: entropy flat at log(6) to 1e-6, max-action probability near 1/6.
    The axes show the curves (max prob not squashed under a top of 1, no offset labels)."""
    root, runs = tmp_path / "results", []
    for loss in ("policy", "scope"):
        for seed in (1, 2):
            ent = [1.791759 + 1e-6 * (seed + k) for k in range(4)]
            mp = [0.1667 + 1e-5 * (seed + k) for k in range(4)]
            runs.append(make_rl_run(root, "Pong", loss, seed, [1.0], total_steps=1000,
                                    n_updates=4, entropy=ent, max_prob=mp))
    out = tmp_path / "tables"
    aggregate.write_tables(out, aggregate.aggregate_rl(runs, reps=20)[0])
    updates = pd.read_parquet(out / "rl_updates.parquet")
    final = pd.read_parquet(out / "rl_final_runs.parquet")
    fig, _ = exploration_figure.exploration_figure(updates, final, window=1, points=5, reps=50)
    try:
        fig.canvas.draw()
        for ax in fig.axes:
            assert ax.yaxis.get_offset_text().get_text() == "", ax.get_title()
            lo, hi = ax.get_ylim()
            ys = np.concatenate([l.get_ydata() for l in ax.get_lines()]).astype(float)
            ys = ys[np.isfinite(ys)]
            assert lo < ys.min() and ys.max() < hi
            # the curves sit in the middle of the panel, not on an edge
            assert (ys.min() - lo) / (hi - lo) > 0.2 and (hi - ys.max()) / (hi - lo) > 0.2
        assert fig.axes[1].get_ylim()[1] < 0.5  # max prob: not a 0..1 axis for 0.167
    finally:
        plt.close(fig)


def test_exploration_cli_writes_png_and_pdf(exploration_tables, tmp_path):
    out = tmp_path / "figures" / "rl_exploration.png"
    assert figures.main(["exploration", "--tables", str(exploration_tables), "--out",
                         str(out), "--reps", "100", "--window", "2"]) == 0
    assert out.stat().st_size > 10_000
    assert out.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert _description(out).startswith("panels: MinAtarBreakout/entropy, "
                                        "MinAtarBreakout/max_prob, "
                                        "MinAtarBreakout/action_top_share, MinAtarAsterix/entropy")


# ----------------------------------------------------------------------------- truncations
def test_curves_leave_out_resumed_episodes_and_name_time_limit_truncations(tmp_path,
                                                                            monkeypatch):
    root = tmp_path / "results"
    runs = [
        # the 1000.0 episode was cut by a kill/resume: it must not reach the curve
        make_rl_run(root, "Breakout", "scope", 1, [1.0, 1000.0, 3.0], [100, 200, 300],
                    total_steps=300, truncated_by_resume=[0, 1, 0], truncated_share=0.3),
        make_rl_run(root, "Breakout", "policy", 1, [2.0, 2.0], [150, 300], total_steps=300,
                    truncated_share=0.01),
        make_rl_run(root, "Pong", "policy", 1, [2.0, 2.0], [150, 300], total_steps=300),
    ]
    tables = tmp_path / "tables"
    aggregate.write_tables(tables, aggregate.aggregate_rl(runs, reps=10)[0])
    saved = {}

    def keep(fig, out, formats, description):
        saved["fig"] = fig
        return []

    close = plt.close
    monkeypatch.setattr(figures, "save_figure", keep)
    monkeypatch.setattr(plt, "close", lambda fig: None)
    info = figures.plot_training_curves(tables, tmp_path / "c.png", window=10, points=4,
                                        reps=50)
    fig = saved["fig"]
    assert info["truncated"] == [("Breakout", "scope", 1, 0.3)]
    scope = _line(fig, "Breakout/scope")
    np.testing.assert_allclose(scope.get_ydata(), [np.nan, 1.0, 1.0, 2.0])  # mean(1, 3)
    notes = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "truncated-note"]
    assert notes == ["time-limit truncations:\nScope s1: 30%"]
    assert fig.axes[1].get_title() == "Breakout" and fig.axes[1].texts  # its own panel
    assert not [t for t in fig.axes[0].texts if t.get_gid() == "truncated-note"]  # Pong
    assert any("more than 5% of episodes cut by the time limit" in t.get_text()
               for t in fig.texts)
    close(fig)
