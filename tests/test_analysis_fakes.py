"""The fabricated run directories of tests/fakes.py follow docs/CONTRACT.md's 'Output files'."""

from __future__ import annotations

import json

import pandas as pd

from fakes import UPDATES_HEADER, make_cls_run, make_rl_run


def test_fake_rl_run_follows_the_contract(tmp_path):
    run = make_rl_run(tmp_path, "Pong", "scope", 1, [1.0, 2.0], eval_rows=[(200, 5.0, 10)])
    assert pd.read_csv(run / "episodes.csv").columns.tolist() == ["global_step", "return",
                                                                  "length"]
    assert pd.read_csv(run / "updates.csv").columns.tolist() == UPDATES_HEADER
    assert pd.read_csv(run / "eval.csv").columns.tolist() == ["global_step", "return", "length"]
    summary = json.loads((run / "summary.json").read_text())
    for key in ("env", "loss", "seed", "total_steps", "final_return_mean_100",
                "final_eval_return_mean", "episodes", "wall_time_s", "mean_sps", "hparams",
                "env_spec", "run_info"):
        assert key in summary


def test_fake_classification_run_follows_the_contract(tmp_path):
    run = make_cls_run(tmp_path, "digits_lt", "plain", "ce", 1, [0.5, 0.25], [10, 1])
    assert pd.read_csv(run / "per_class.csv").columns.tolist() == [
        "class", "name", "train_count", "support", "precision", "recall", "f1"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["precision_std"] == 0.125
