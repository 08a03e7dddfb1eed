"""The update phase of PPO: a few epochs of minibatch steps on one collected ``Batch``.

Per minibatch: z-score advantage normalisation (eq. 9), the policy loss chosen by name
from the registry (``scopeloss.losses.ppo_policy_loss``), CleanRL's value loss (clipped or
not) weighted by ``vf_coef``, global gradient-norm clipping and an optimiser step.

Each epoch draws the policy term's samples as the loss was registered to
(``Loss.sampling``): a random permutation of the rollout (``natural``: every sample once),
or ``batch.size`` samples with replacement, sample i with probability proportional to
``1 / n_{a_i}`` (``action_balanced``: every action equally likely; ``resampled_policy``). A
loss that needs the rollout's action counts (``weighted_policy``) gets them.

The value loss and the diagnostics always see the rollout as it is: for an action-balanced
loss each minibatch also carries a minibatch of the epoch's natural permutation (one
forward pass over both), on which the critic is trained and entropy, max probability,
approximate KL and clip fraction are measured. Rebalancing is a remedy for the policy's
classification of actions; the critic regresses returns of the states the agent visits,
and a diagnostic measured on the redrawn states would describe a rollout that never was.

Diagnostics (losses, entropy, approximate KL, clip fraction, mean max probability) are
summed on the device over the last epoch's minibatches and read back once per update with
the action mix (``action_top_share``: the commonest action's share of the rollout;
``update_action_top_share``: its share among the samples the update's epochs used): the
update's one host sync. The log-probabilities are computed once per minibatch, for the
loss and the diagnostics.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scopeloss.lifecycle import LossFailure
from scopeloss.losses import BoundLoss, check_index_range, check_ppo_inputs
from scopeloss.rl.rollout import Batch
from scopeloss.params import PPOConfig

DIAGNOSTICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "max_prob")
ACTION_MIX = ("action_top_share", "update_action_top_share")


def epoch_samples(batch: Batch, sampling: str, counts: torch.Tensor) -> torch.Tensor:
    """One epoch's sample indices into ``batch``: a permutation (natural) or, for
    action_balanced, ``batch.size`` draws with replacement, P(i) proportional to 1/n_{a_i}."""
    if sampling == "natural":
        return torch.randperm(batch.size, device=batch.actions.device)
    weights = counts.reciprocal()[batch.actions]
    return torch.multinomial(weights, batch.size, replacement=True)


def minibatch_loss(policy, batch: Batch, mb: torch.Tensor, p: PPOConfig, loss: BoundLoss, *,
                   autocast, diagnostics: bool, natural_mb: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The PPO objective on minibatch ``mb`` (indices into ``batch``) and, if asked, its
    diagnostics (a tensor of DIAGNOSTICS plus a count of 1, for summing). ``natural_mb``:
    the rollout's own samples for the value loss and the diagnostics when ``mb`` was
    redrawn (action-balanced); None: ``mb`` serves all three."""
    rows = mb if natural_mb is None else torch.cat([mb, natural_mb])
    with autocast:
        all_logits, all_values = policy(batch.obs[rows])
    all_logits, all_values = all_logits.float(), all_values.float()
    all_log_p = torch.log_softmax(all_logits, dim=-1)
    logits, log_p = all_logits[:mb.numel()], all_log_p[:mb.numel()]
    nat = mb if natural_mb is None else natural_mb
    nat_log_p, new_value = all_log_p[-nat.numel():], all_values[-nat.numel():]
    mb_adv = batch.advantages[mb]
    if p.norm_adv and mb.numel() > 1:  # eq. 9, per minibatch
        mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
    actions, old_logprob = batch.actions[mb], batch.logprobs[mb]
    check_ppo_inputs(logits, actions, old_logprob, mb_adv, p.clip_coef, check_range=False)
    pg_loss = loss.ppo(logits, actions, old_logprob, mb_adv, clip_coef=p.clip_coef,
                       log_probs=log_p, record=diagnostics)
    returns = batch.returns[nat]
    v_loss_unclipped = (new_value - returns) ** 2
    if p.clip_vloss:  # CleanRL: 0.5 * max(unclipped, clipped), then x vf_coef
        old_values = batch.values[nat]
        v_clipped = old_values + (new_value - old_values).clamp(-p.clip_coef, p.clip_coef)
        v_loss = 0.5 * torch.max(v_loss_unclipped, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * v_loss_unclipped.mean()
    if not diagnostics:
        return pg_loss + p.vf_coef * v_loss, None
    with torch.no_grad():
        nat_log_p = nat_log_p.detach()
        probs = nat_log_p.exp()
        log_ratio = (nat_log_p.gather(1, batch.actions[nat, None]).squeeze(1)
                     - batch.logprobs[nat])
        ratio = log_ratio.exp()
        stats = torch.stack([
            pg_loss.detach(), v_loss.detach(), -(probs * nat_log_p).sum(1).mean(),
            ((ratio - 1) - log_ratio).mean(), ((ratio - 1).abs() > p.clip_coef).float().mean(),
            probs.max(1).values.mean(), torch.ones((), device=all_logits.device)])
    return pg_loss + p.vf_coef * v_loss, stats


def update(agent: nn.Module, policy, optimizer, batch: Batch, p: PPOConfig, loss: BoundLoss, *,
           autocast, num_actions: int, update_index: int, progress: float = 0.0
           ) -> dict[str, float]:
    """``update_epochs`` passes over ``batch`` in ``num_minibatches`` minibatches, drawn as
    the loss's ``sampling`` says; returns the mean DIAGNOSTICS over the last pass's
    minibatches, the loss's own metrics over the same (``loss_<name>``) and the ACTION_MIX
    of the rollout and of the samples used. ``progress``: the fraction of the run's steps
    done when the update's rollout began."""
    # The actions' range is checked once here, where they enter the update (on CUDA an
    # async device assert), not in every minibatch's loss call.
    check_index_range("actions", batch.actions, num_actions)
    spec = loss.loss
    device = batch.actions.device
    counts = torch.bincount(batch.actions, minlength=num_actions).float()
    loss.set(action_counts=counts, progress=progress, update=update_index)
    # the action counts of the samples the epochs use: a permutation uses each sample once
    used = counts if spec.sampling == "natural" else torch.zeros_like(counts)
    stats = torch.zeros(len(DIAGNOSTICS) + 1, device=device)
    params = list(agent.parameters())
    for epoch in range(p.update_epochs):
        last = epoch == p.update_epochs - 1
        samples = epoch_samples(batch, spec.sampling, counts)
        splits = min(p.num_minibatches, batch.size)
        natural: list = [None] * splits  # the value loss and diagnostics use `samples`
        if spec.sampling != "natural":
            used += torch.bincount(batch.actions[samples], minlength=num_actions)
            natural = list(epoch_samples(batch, "natural", counts).tensor_split(splits))
        for mb, natural_mb in zip(samples.tensor_split(splits), natural):
            total, mb_stats = minibatch_loss(
                policy, batch, mb, p, loss, autocast=autocast, diagnostics=last,
                natural_mb=natural_mb)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            nn.utils.clip_grad_norm_(params, p.max_grad_norm, foreach=True)
            optimizer.step()
            if mb_stats is not None:  # asked for on the last epoch
                stats += mb_stats
    mix = torch.stack([counts.max() / counts.sum(), used.max() / used.sum()])
    metrics = loss.take_metrics()
    sums = torch.cat([stats, mix, *(v.reshape(1) for v in metrics.values())]
                     ).tolist()  # the update's one host sync
    n, m = len(DIAGNOSTICS), len(DIAGNOSTICS) + 1 + len(ACTION_MIX)
    means = dict(zip(DIAGNOSTICS, (x / sums[n] for x in sums[:n])))
    means.update(zip(ACTION_MIX, sums[n + 1:m]))
    means.update(zip((f"loss_{k}" for k in metrics), sums[m:]))
    if not all(math.isfinite(means[k]) for k in ("policy_loss", "value_loss", "entropy")):
        raise LossFailure(f"non-finite loss at update {update_index} with PPO policy loss "
                          f"{loss.name!r} (policy {means['policy_loss']}, value "
                          f"{means['value_loss']}, entropy {means['entropy']})")
    return means
