"""Learning, not just running: PPO with an MLP on CartPole-v1, fixed seed and step budget."""

import numpy as np
import pandas as pd
import pytest

from scopeloss.rl.config import resolve
from scopeloss.rl.ppo import train

# CleanRL ppo.py settings with 8 envs x 64 steps and 10 epochs: solves CartPole well inside
# the 150k-step budget for every loss (reaching 400 around 25k-60k steps with seed 1).
BUDGET = {"total_steps": 150_000, "num_envs": 8, "num_steps": 64, "update_epochs": 10}
RUN = {"torch_threads": 1, "checkpoint_every": 1000, "device": "cpu"}


@pytest.mark.parametrize("loss", ["scope"])  # one learning run: the losses' maths is test_losses.py's
def test_cartpole_is_learnt(tmp_path, loss):
    hp = resolve("CartPole-v1", loss, {"ppo": BUDGET})
    summary = train(hp, seed=1, out=tmp_path,
                    run=RUN, log=lambda _: None)
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert summary["global_step"] == 150_000 and episodes.global_step.max() <= 150_000
    assert episodes["return"].head(20).mean() < 100  # it starts out bad ...
    assert episodes["return"].tail(20).mean() >= 400  # ... and ends good
    updates = pd.read_csv(tmp_path / "updates.csv")
    # The policy sharpens as it learns: entropy falls, the top action's probability rises.
    assert updates.entropy.iloc[-1] < updates.entropy.iloc[0]
    assert updates.max_prob.iloc[-1] > updates.max_prob.iloc[0]


def test_focal_runs_with_finite_losses(tmp_path):
    hp = resolve("CartPole-v1", "focal", {"ppo": {**BUDGET, "total_steps": 16_384}})
    summary = train(hp, seed=1, out=tmp_path,
                    run=RUN, log=lambda _: None)
    updates = pd.read_csv(tmp_path / "updates.csv")
    assert summary["global_step"] == 16_384 and len(updates) == 32
    cols = ["policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "max_prob"]
    assert np.isfinite(updates[cols].to_numpy()).all()
    assert summary["loss"] == "focal" and summary["hparams"]["loss"]["alpha"] == 2.0
