"""Tidy tables from fabricated run directories: final performance by hand, run status for
unfinished runs, clear errors for malformed files, and hundreds of runs in seconds."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from scopeloss.analysis import aggregate
from scopeloss.analysis.runs import RunFileError
from fakes import make_cls_run, make_rl_run


@pytest.fixture()
def rl_runs(tmp_path):
    root = tmp_path / "results"
    runs = [
        # 150 episodes 0..149: the last 100 are 50..149, mean 99.5
        make_rl_run(root, "Pong", "scope", 1, np.arange(150.0), total_steps=20_000),
        # 30 episodes all 10.0: fewer than 100, all are used
        make_rl_run(root, "Pong", "scope", 2, np.full(30, 10.0), total_steps=20_000),
        make_rl_run(root, "Pong", "policy", 1, [-21.0, -20.0, -19.0], total_steps=20_000),
        make_rl_run(root, "StarPilot", "scope", 1, [5.0, 7.0], [64, 128],
                    eval_rows=[(64, 1.0, 9), (128, 3.0, 9), (128, 5.0, 9)]),
    ]
    return root, runs


def test_final_performance_by_hand(rl_runs):
    root, runs = rl_runs
    tables, warnings = aggregate.aggregate_rl(runs)
    assert warnings == []
    per_run = tables["rl_final_runs"].set_index(["env", "loss", "seed"])
    assert per_run.loc[("Pong", "scope", 1), "final_return"] == pytest.approx(99.5)
    assert per_run.loc[("Pong", "scope", 1), "final_return_episodes"] == 100
    assert per_run.loc[("Pong", "scope", 2), "final_return"] == pytest.approx(10.0)
    assert per_run.loc[("Pong", "policy", 1), "final_return"] == pytest.approx(-20.0)
    # human-normalised: (score - random) / (human - random), Pong (-20.7, 14.6)
    assert per_run.loc[("Pong", "policy", 1), "normalized_final_return"] == pytest.approx(
        (-20.0 + 20.7) / (14.6 + 20.7))
    # StarPilot hard min-max [1.5, 35]; test levels: the last evaluation round (step 128)
    star = per_run.loc[("StarPilot", "scope", 1)]
    assert star["final_return"] == pytest.approx(6.0)
    assert star["normalized_final_return"] == pytest.approx((6.0 - 1.5) / 33.5)
    assert star["final_eval_return"] == pytest.approx(4.0)
    assert (tables["rl_final_runs"]["status"] == "complete").all()

    final = tables["rl_final"].set_index(["env", "loss"])
    scope = final.loc[("Pong", "scope")]
    assert scope["final_return_mean"] == pytest.approx((99.5 + 10.0) / 2)
    assert scope["final_return_std"] == pytest.approx(np.std([99.5, 10.0], ddof=1))
    # two seeds: the percentile bootstrap CI spans exactly their two values
    assert (scope["final_return_ci_low"], scope["final_return_ci_high"]) == (10.0, 99.5)
    assert scope["n_seeds"] == 2 and scope["seeds"] == "1,2"
    one = final.loc[("Pong", "policy")]
    assert one["final_return_ci_low"] == one["final_return_ci_high"] == -20.0
    assert np.isnan(one["final_return_std"])
    assert final.loc[("StarPilot", "scope"), "final_eval_return_mean"] == pytest.approx(4.0)
    # the paper's orders: env (Pong before StarPilot), then loss (Policy before Scope)
    assert list(tables["rl_final"]["loss_name"]) == ["Policy", "Scope", "Scope"]


def test_tidy_episode_update_and_eval_tables(rl_runs):
    root, runs = rl_runs
    tables, _ = aggregate.aggregate_rl(runs)
    eps = tables["rl_episodes"]
    assert list(eps.columns[:8]) == ["env", "loss", "seed", "episode", "global_step", "frames",
                                     "return", "length"]
    assert len(eps) == 150 + 30 + 3 + 2
    pong = eps[eps["env"] == "Pong"]
    assert (pong["frames"] == 4 * pong["global_step"]).all()  # Atari frame skip 4
    star = eps[eps["env"] == "StarPilot"]
    assert (star["frames"] == star["global_step"]).all()
    assert list(star["return"]) == [5.0, 7.0]
    ups = tables["rl_updates"]
    assert {"update", "global_step", "frames", "policy_loss", "approx_kl", "max_prob",
            "sps"} <= set(ups.columns)
    assert len(ups) == 4 * 3
    ev = tables["rl_eval"]
    assert len(ev) == 3 and set(ev["split"]) == {"test"} and set(ev["env"]) == {"StarPilot"}


def test_cli_writes_csv_and_parquet(rl_runs, tmp_path, capsys):
    root, runs = rl_runs
    out = tmp_path / "tables"
    args = ["rl", "--runs", *[str(r / "summary.json") for r in runs], "--out-dir", str(out)]
    assert aggregate.main(args) == 0
    for name in aggregate.RL_TABLES:
        csv, parquet = pd.read_csv(out / f"{name}.csv"), pd.read_parquet(out / f"{name}.parquet")
        assert len(csv) == len(parquet) > 0, name
    assert str(out) in capsys.readouterr().out


def test_unfinished_runs_are_reported_not_dropped(rl_runs, capsys, tmp_path):
    root, runs = rl_runs
    running = make_rl_run(root, "Pong", "focal", 3, [1.0, 3.0], finished=False)
    fresh = root / "rl" / "Breakout" / "scope" / "seed2"
    fresh.mkdir(parents=True)  # started, nothing logged yet
    empty = make_rl_run(root, "Breakout", "scope", 1, [], finished=False)  # header only
    out = tmp_path / "tables"
    args = ["rl", "--runs", *map(str, runs), str(running / "summary.json"), str(fresh),
            str(empty), "--out-dir", str(out)]
    assert aggregate.main(args) == 0
    err = capsys.readouterr().err
    assert f"{running}: incomplete" in err and "2 episodes logged so far" in err
    assert f"{fresh}: missing" in err and f"{empty}: missing" in err
    per_run = pd.read_parquet(out / "rl_final_runs.parquet").set_index(["env", "loss", "seed"])
    assert per_run.loc[("Pong", "focal", 3), "status"] == "incomplete"
    assert per_run.loc[("Pong", "focal", 3), "final_return"] == pytest.approx(2.0)
    assert per_run.loc[("Breakout", "scope", 2), "status"] == "missing"
    assert np.isnan(per_run.loc[("Breakout", "scope", 2), "final_return"])
    final = pd.read_parquet(out / "rl_final.parquet").set_index(["env", "loss"])
    row = final.loc[("Breakout", "scope")]
    assert row["n_runs"] == 2 and row["n_seeds"] == 0 and row["missing_seeds"] == "1,2"
    assert np.isnan(row["final_return_mean"])


@pytest.mark.parametrize("case, expect", [
    ("bad_json", "summary.json: malformed JSON"),
    ("summary_key", "summary.json: missing key(s) loss"),
    ("missing_column", "episodes.csv: missing column(s) return"),
    ("not_numeric", "episodes.csv: column 'return' must be numeric; line 3 has 'abc'"),
    ("ragged", "episodes.csv: malformed CSV"),
    ("no_episodes_file", "episodes.csv: file not found"),
    ("bad_path", "no summary.json and the path does not end in {env}/{loss}/seed{seed}"),
])
def test_malformed_run_files_name_the_file(tmp_path, capsys, case, expect):
    run = make_rl_run(tmp_path, "Pong", "scope", 1, [1.0, 2.0, 3.0])
    eps = run / "episodes.csv"
    if case == "bad_json":
        (run / "summary.json").write_text("{\"env\": \"Pong\",")
    elif case == "summary_key":
        (run / "summary.json").write_text(json.dumps({"env": "Pong", "seed": 1}))
    elif case == "missing_column":
        eps.write_text("global_step,length\n1,2\n")
    elif case == "not_numeric":
        eps.write_text("global_step,return,length\n1,2.0,3\n2,abc,3\n")
    elif case == "ragged":
        eps.write_text("global_step,return,length\n1,2,3\n1,2,3,4,5\n")
    elif case == "no_episodes_file":
        eps.unlink()
    elif case == "bad_path":
        run = tmp_path / "somewhere" / "run1"
        run.mkdir(parents=True)
    with pytest.raises(RunFileError, match=expect.replace("(", r"\(").replace(")", r"\)")
                       .replace("{", r"\{").replace("}", r"\}")) as err:
        aggregate.aggregate_rl([run])
    assert str(run) in str(err.value)
    assert aggregate.main(["rl", "--runs", str(run), "--out-dir", str(tmp_path / "t")]) == 1
    assert "error: " in capsys.readouterr().err
    assert not (tmp_path / "t").exists()  # nothing half-written


def test_the_same_run_twice_is_an_error(tmp_path):
    run = make_rl_run(tmp_path, "Pong", "scope", 1, [1.0])
    with pytest.raises(RunFileError, match="also given as"):
        aggregate.aggregate_rl([run, run / "summary.json"])


def test_classification_tables(tmp_path, capsys):
    root = tmp_path / "results"
    a = make_cls_run(root, "digits_lt", "plain", "scope", 1, [0.5, 0.0, 1.0], [30, 10, 3])
    b = make_cls_run(root, "digits_lt", "plain", "ce", 1, [0.25, 0.5, 0.75], [30, 10, 3])
    c = make_cls_run(root, "digits_lt", "augmented", "ce", 2, [0.1, 0.2, 0.3], [30, 10, 3],
                     finished=False)
    out = tmp_path / "tables"
    assert aggregate.main(["classification", "--runs", str(a), str(b / "summary.json"),
                           str(c), "--out-dir", str(out)]) == 0
    assert f"{c}: missing" in capsys.readouterr().err
    per_class = pd.read_parquet(out / "classification_per_class.parquet")
    assert len(per_class) == 6
    assert list(per_class.columns) == ["dataset", "experiment", "loss", "seed", "class", "name",
                                       "train_count", "support", "precision", "recall", "f1"]
    summary = pd.read_csv(out / "classification_summary.csv")
    # paper column order within an experiment: SL before CEL
    assert list(summary[summary["experiment"] == "plain"]["loss_name"]) == ["SL", "CEL"]
    row = summary.set_index(["experiment", "loss"]).loc[("plain", "scope")]
    assert row["precision_mean"] == pytest.approx(0.5)
    assert row["never_predicted"] == 1 and row["status"] == "complete"
    assert summary.set_index(["experiment", "loss"]).loc[("augmented", "ce"), "status"] == "missing"


def test_hundreds_of_runs_aggregate_quickly(tmp_path):
    rng = np.random.default_rng(0)
    envs = ["Pong", "Breakout", "Asterix", "Seaquest", "Venture", "Gravitar",
            "MontezumaRevenge", "StarPilot"]
    runs = []
    for env in envs:
        for loss in ("policy", "policy_entropy", "scope", "focal"):
            for seed in range(1, 11):  # 8 x 4 x 10 = 320 runs, 300 episodes each
                runs.append(make_rl_run(tmp_path, env, loss, seed, rng.normal(size=300),
                                        n_updates=50))
    t0 = time.perf_counter()
    tables, warnings = aggregate.aggregate_rl(runs)
    elapsed = time.perf_counter() - t0
    assert len(tables["rl_final_runs"]) == 320 and len(tables["rl_final"]) == 32
    assert len(tables["rl_episodes"]) == 320 * 300 and not warnings
    print(f"aggregated 320 runs in {elapsed:.2f} s")
    assert elapsed < 60  # a generous bound on a 2-core box; typically a few seconds


# ----------------------------------------------------------------------------- resume / truncation
def test_resume_flag_kept_defaulted_and_left_out_of_final_returns(tmp_path):
    root = tmp_path / "results"
    runs = [
        # episode 2 was cut by a kill/resume: its 1000.0 is a partial return
        make_rl_run(root, "Pong", "scope", 1, [1.0, 1000.0, 3.0], [10, 20, 30],
                    truncated_by_resume=[0, 1, 0], truncated_share=0.25),
        make_rl_run(root, "Pong", "scope", 2, [5.0, 7.0], [10, 20], truncated_share=0.0),
        make_rl_run(root, "Pong", "policy", 1, [4.0], [10]),  # older run: no column, no key
    ]
    tables, _ = aggregate.aggregate_rl(runs, reps=50)
    eps = tables["rl_episodes"]
    assert eps["truncated_by_resume"].tolist() == [0, 0, 1, 0, 0, 0]  # policy first
    assert eps["truncated_by_resume"].dtype.kind == "i"
    per_run = tables["rl_final_runs"].set_index(["env", "loss", "seed"])
    cut = per_run.loc[("Pong", "scope", 1)]
    assert cut["final_return"] == pytest.approx(2.0)  # mean(1, 3), not mean(1, 1000, 3)
    assert cut["episodes"] == 2 and cut["episodes_truncated_by_resume"] == 1
    assert cut["truncated_share"] == pytest.approx(0.25)
    assert np.isnan(per_run.loc[("Pong", "policy", 1), "truncated_share"])
    final = tables["rl_final"].set_index(["env", "loss"])
    assert final.loc[("Pong", "scope"), "truncated_share_max"] == pytest.approx(0.25)
    assert np.isnan(final.loc[("Pong", "policy"), "truncated_share_max"])
    out = tmp_path / "tables"
    aggregate.write_tables(out, tables)  # the flag survives both file formats
    assert pd.read_csv(out / "rl_episodes.csv")["truncated_by_resume"].sum() == 1
    assert pd.read_parquet(out / "rl_episodes.parquet")["truncated_by_resume"].sum() == 1


def test_resume_flag_must_be_zero_or_one(tmp_path):
    run = make_rl_run(tmp_path / "results", "Pong", "scope", 1, [1.0, 2.0],
                      truncated_by_resume=[0, 2])
    with pytest.raises(RunFileError, match=r"episodes.csv: column 'truncated_by_resume' must "
                                           r"be 0 or 1; line 3 has 2"):
        aggregate.aggregate_rl([run])
