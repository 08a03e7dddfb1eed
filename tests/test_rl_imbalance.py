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
from scopeloss.losses import BoundLoss
from scopeloss.params import PPOConfig

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
    return up.update(net, net, opt, batch, cfg, BoundLoss("ppo", loss, params),
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
    original = BoundLoss._kwargs

    def spy(self, scratch_state):  # what each minibatch's loss call is handed
        kwargs = original(self, scratch_state)
        counts = kwargs.get("action_counts")
        seen.append(None if counts is None else counts.tolist())
        return kwargs

    monkeypatch.setattr(BoundLoss, "_kwargs", spy)
    batch = imbalanced_batch()
    run_update("weighted_policy", batch)
    counts = torch.bincount(batch.actions, minlength=2).float().tolist()
    assert seen and all(c == counts for c in seen)  # every minibatch: the whole rollout's
    seen.clear()
    run_update("policy", batch)
    assert seen and all(c is None for c in seen)


class TwoStatePolicy(torch.nn.Module):
    """Feature 1 marks a sure state (logits +-4: max_prob 0.9997), 0 an unsure one (equal
    logits); the value is a learnable constant."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([4.0, -4.0]))
        self.v = torch.nn.Parameter(torch.zeros(()))

    def forward(self, obs):
        return obs[:, :1] * self.scale, self.v.expand(obs.shape[0])


def two_state_rollout(n=2000, seed=0) -> Batch:
    """80 % sure states acting A (action 0), 20 % unsure states acting B (action 1): the rare
    action lives in the unsure states, so balancing the actions redraws mostly unsure states."""
    g = torch.Generator().manual_seed(seed)
    sure = torch.rand(n, generator=g) < 0.8
    obs = torch.stack([sure.float(), torch.zeros(n)], 1)
    actions = (~sure).long()
    logprobs = torch.log_softmax(obs[:, :1] * torch.tensor([4.0, -4.0]), -1).gather(
        1, actions[:, None]).squeeze(1)
    return Batch(obs=obs, actions=actions, logprobs=logprobs, values=torch.zeros(n),
                 advantages=torch.randn(n, generator=g),
                 returns=sure.float() + 0.1 * torch.randn(n, generator=g))


def diagnostics_at_lr0(loss, batch):
    torch.manual_seed(0)
    net = TwoStatePolicy()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    cfg = PPOConfig.from_mapping({**{k: d.default for k, d in declarations.PPO.items()}, **P}, "ppo")
    return up.update(net, net, opt, batch, cfg, BoundLoss("ppo", loss),
                     autocast=contextlib.nullcontext(), num_actions=2, update_index=1)


def test_resampled_policy_measures_and_trains_the_critic_on_the_rollout():
    """Only the policy term sees the action-balanced draws: at lr 0 the logged entropy,
    max_prob, approx_kl, clipfrac and value loss equal plain policy's on the same rollout
    (on draws, 50 % unsure states instead of 20 %, the entropy would read ~2.5x higher)."""
    batch = two_state_rollout()
    plain = diagnostics_at_lr0("policy", batch)
    balanced = diagnostics_at_lr0("resampled_policy", batch)
    for key in ("entropy", "max_prob", "approx_kl", "clipfrac", "value_loss"):
        assert balanced[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-7), key
    assert 0.5 <= balanced["update_action_top_share"] < 0.53  # the policy term: balanced
    assert plain["max_prob"] == pytest.approx(0.8 * 0.99966 + 0.2 * 0.5, abs=0.02)
