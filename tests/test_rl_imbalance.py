"""RL's imbalance remedies inside the PPO update (scopeloss.rl.update): on a rollout whose
actions are 95 % A and 5 % B (the mission's two-action example), resampled_policy's update
uses a balanced mix, weighted_policy gets the rollout's counts, and every loss reports how
imbalanced the rollout was."""

from __future__ import annotations

import contextlib

import pytest
import torch

from scopeloss import params as declarations
from scopeloss.rl import update as up
from scopeloss.rl.networks import make_network
from scopeloss.rl.rollout import Batch
from scopeloss.typed_config import LossConfig, PPOConfig

P = {"update_epochs": 4, "num_minibatches": 4, "norm_adv": True, "clip_coef": 0.2,
     "clip_vloss": False, "vf_coef": 0.5, "max_grad_norm": 0.5}


def imbalanced_batch(n=2000, share_a=0.95, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    actions = (torch.rand(n, generator=g) > share_a).long()  # 0 = A (95 %), 1 = B
    return Batch(obs=torch.randn(n, 4, generator=g), actions=actions,
                 logprobs=torch.full((n,), -0.6931), values=torch.zeros(n),
                 advantages=torch.randn(n, generator=g), returns=torch.randn(n, generator=g))


def run_update(loss, batch, params=None, monkeypatch=None):
    torch.manual_seed(0)
    net = make_network((4,), 2, image=False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    cfg = PPOConfig.from_mapping({**{k: d.default for k, d in declarations.PPO.items()}, **P}, "ppo")
    return up.update(net, net, opt, batch, cfg, LossConfig(loss, params or {}),
                     autocast=contextlib.nullcontext(), num_actions=2, update_index=1)


def test_every_loss_reports_the_rollouts_action_mix():
    batch = imbalanced_batch()
    share = float((batch.actions == 0).float().mean())
    assert share == pytest.approx(0.95, abs=0.015)
    for loss, params in (("policy", {}), ("scope", {"alpha": 0.01}), ("weighted_policy", {})):
        stats = run_update(loss, batch, params)
        assert stats["action_top_share"] == pytest.approx(share)
        assert stats["update_action_top_share"] == pytest.approx(share)  # each sample once


def test_resampled_policy_balances_the_updates_action_mix():
    batch = imbalanced_batch()
    stats = run_update("resampled_policy", batch)
    assert stats["action_top_share"] == pytest.approx(0.95, abs=0.015)
    # 4 epochs x 2000 draws, each action with probability 1/2: the commoner one's share
    # lies within 0.5 +- 4 standard deviations (0.0056)
    assert 0.5 <= stats["update_action_top_share"] < 0.523


def test_resampled_epochs_draw_actions_equally_often():
    batch = imbalanced_batch(n=1000, share_a=0.9, seed=3)
    counts = torch.bincount(batch.actions, minlength=2).float()
    torch.manual_seed(1)
    draws = torch.cat([up.epoch_samples(batch, "action_balanced", counts) for _ in range(50)])
    share_b = float((batch.actions[draws] == 1).float().mean())
    assert share_b == pytest.approx(0.5, abs=0.01)
    perm = up.epoch_samples(batch, "natural", counts)
    assert sorted(perm.tolist()) == list(range(1000))


def test_weighted_policy_gets_the_rollouts_counts(monkeypatch):
    seen = []
    original = up.ppo_policy_loss

    def spy(name, *args, action_counts=None, **kwargs):
        seen.append(None if action_counts is None else action_counts.tolist())
        return original(name, *args, action_counts=action_counts, **kwargs)

    monkeypatch.setattr(up, "ppo_policy_loss", spy)
    batch = imbalanced_batch()
    run_update("weighted_policy", batch)
    counts = torch.bincount(batch.actions, minlength=2).float().tolist()
    assert seen and all(c == counts for c in seen)  # every minibatch: the whole rollout's
    seen.clear()
    run_update("policy", batch)
    assert seen and all(c is None for c in seen)
