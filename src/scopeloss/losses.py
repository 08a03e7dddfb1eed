"""Every loss, as pure functions registered by name: tensors in, a scalar batch mean out.

Equation numbers are those of *Scope Loss for Imbalanced Classification and RL
Exploration*. Each loss is registered once (``scopeloss.registry``) with the public
decorators a user's own module uses too (docs/CONTRACT.md, "Your own loss")::

    @register_ppo_loss("my_pg", alpha=param(0.01, low=0), label="My PG")
    def my_pg(logits, actions, old_logprob, advantages, *, clip_coef, alpha): ...
    @register_supervised_loss("my_ce", label="My CE")
    def my_ce(logits, targets): ...

``ppo_policy_loss(name, ...)`` and ``supervised_loss(name, ...)`` check the inputs once
and dispatch by the registry: a name that is not registered is an error naming the
registered ones (no fall-through to another loss's formula).

All probabilities come from ``log_softmax`` computed in float32 (float64 stays float64,
which ``gradcheck`` needs), so bf16/fp16 logits under autocast lose no precision in the
loss. Every ``p_i`` and ``p_j`` term is a function of ``logits`` and carries gradient; the
advantage is a constant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scopeloss import registry
from scopeloss.loss_calls import (KIND, METRIC, BoundLoss, board_tag, check_index_range,
                                  check_ppo_inputs, metric_columns, ppo_policy_loss,
                                  supervised_loss, torch)
from scopeloss.registry import param

if TYPE_CHECKING:
    from torch import Tensor

    from scopeloss.config_keys import Param

__all__ = [
    "param",
    "register_ppo_loss",
    "register_supervised_loss",
    "BoundLoss",
    "metric_columns",
    "board_tag",
    "ppo_policy_loss",
    "supervised_loss",
    "check_index_range",
    "check_ppo_inputs",
    "KIND",
    "METRIC",
    "clipped_surrogate",
    "float_log_probs",
    "PPO_LOSSES",
    "SUPERVISED_LOSSES",
]


def register_ppo_loss(name: str, *, label: str | None = None, color: str | None = None,
                      dash: Any = None, needs: tuple[str, ...] = (),
                      needs_action_counts: bool = False, sampling: str = "natural",
                      **params: float | Param):
    """Register ``fn(logits, actions, old_logprob, advantages, *, clip_coef, <needs>,
    **params)`` as the PPO policy loss ``name``; it returns the batch mean to minimise, or
    ``(mean, {name: scalar tensor})`` with metrics of its own. ``needs`` names the context it
    is handed by keyword: ``action_counts`` (A,) of the rollout, ``progress`` (fraction of
    the run's steps done when the update starts), ``update`` (1-based), ``state`` (a dict of
    tensors it owns, checkpointed); ``needs_action_counts=True`` is ``needs=("action_counts",)``.
    ``params`` are its parameters with their defaults, a number or ``param(default, low=,
    high=)`` with bounds (``rl.loss_specs.<name>`` overrides them, within the bounds).
    ``sampling="action_balanced"`` makes the update draw its samples with every action
    equally likely (``resampled_policy``)."""
    return registry.register("ppo", name, params, label=label, color=color, dash=dash,
                             needs=needs, needs_counts=needs_action_counts, sampling=sampling)


def register_supervised_loss(name: str, *, label: str | None = None, color: str | None = None,
                             dash: Any = None, needs: tuple[str, ...] = (),
                             needs_class_counts: bool = False,
                             eval_logits: Callable | None = None, **params: float | Param):
    """Register ``fn(logits, targets, *, <needs>, **params)`` as the classification loss
    ``name``; it returns the batch mean, or ``(mean, {name: scalar tensor})``. ``needs``:
    ``class_counts`` (C,) of the training split, ``progress`` (fraction of the epochs done
    when the epoch starts), ``epoch`` (0-based), ``state`` (a dict of tensors it owns,
    checkpointed); ``needs_class_counts=True`` is ``needs=("class_counts",)``.
    ``eval_logits(logits, *, <needs>, **params) -> logits`` is applied before every
    validation and test prediction (post-hoc adjustment)."""
    return registry.register("supervised", name, params, label=label, color=color, dash=dash,
                             needs=needs, needs_counts=needs_class_counts,
                             eval_logits=eval_logits)


# ----------------------------------------------------------------------------- checks
def float_log_probs(logits: Tensor) -> Tensor:
    """log_softmax in at least float32, whatever the autocast dtype of ``logits``."""
    if not torch.is_floating_point(logits):
        raise TypeError(f"logits must be a floating tensor, got {logits.dtype}")
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return torch.log_softmax(logits.to(dtype), dim=-1)


# ----------------------------------------------------------------------------- PPO losses
def clipped_surrogate(log_p: Tensor, actions: Tensor, old_logprob: Tensor, advantages: Tensor,
                      clip_coef: float) -> tuple[Tensor, Tensor]:
    """Per sample: ``L_clip = min(r A, g(eps, A))`` with ``r = p_i / p_i^k`` (eq. 10's term),
    and ``log p_i``."""
    log_pi = log_p.gather(1, actions.long()[:, None]).squeeze(1)
    adv = advantages.to(log_p.dtype)
    ratio = torch.exp(log_pi - old_logprob.to(log_p.dtype))
    bound = torch.where(adv >= 0, adv * (1.0 + clip_coef), adv * (1.0 - clip_coef))
    return torch.minimum(ratio * adv, bound), log_pi


@register_ppo_loss("policy", label="Policy", color="#1f77b4", dash="solid")
def policy(logits, actions, old_logprob, advantages, *, clip_coef, log_probs=None):
    """Eq. 10: ``-L_clip``."""
    log_p = float_log_probs(logits) if log_probs is None else log_probs
    l_clip, _ = clipped_surrogate(log_p, actions, old_logprob, advantages, clip_coef)
    return (-l_clip).mean()


@register_ppo_loss("policy_entropy", alpha=param(0.01, low=0), label="Policy+Entropy",
                   color="#ff7f0e", dash=(0, (5, 2)))
def policy_entropy(logits, actions, old_logprob, advantages, *, clip_coef, alpha,
                   log_probs=None):
    """Eq. 11: ``-L_clip + alpha sum_j p_j log p_j`` (alpha_entropy, paper Table 3)."""
    log_p = float_log_probs(logits) if log_probs is None else log_probs
    l_clip, _ = clipped_surrogate(log_p, actions, old_logprob, advantages, clip_coef)
    return (-l_clip + alpha * (log_p.exp() * log_p).sum(dim=1)).mean()


@register_ppo_loss("scope", alpha=param(0.01, low=0), label="Scope", color="#2ca02c",
                   dash=(0, (2, 1.5)))
def scope(logits, actions, old_logprob, advantages, *, clip_coef, alpha, log_probs=None):
    """Eq. 12: ``-L_clip + alpha p_i log p_i`` (alpha_scope, paper Table 3)."""
    log_p = float_log_probs(logits) if log_probs is None else log_probs
    l_clip, log_pi = clipped_surrogate(log_p, actions, old_logprob, advantages, clip_coef)
    return (-l_clip + alpha * log_pi.exp() * log_pi).mean()


@register_ppo_loss("focal", alpha=param(2.0, low=0), label="Focal", color="#d62728",
                   dash=(0, (6, 1.5, 1, 1.5)))
def focal(logits, actions, old_logprob, advantages, *, clip_coef, alpha, log_probs=None):
    """Eq. 14: ``-L_clip A + 2 alpha L_clip p_i - alpha^2 p_i^2 log p_i``; gamma fixed at 2
    by the derivation (alpha_focal, paper Table 3)."""
    log_p = float_log_probs(logits) if log_probs is None else log_probs
    l_clip, log_pi = clipped_surrogate(log_p, actions, old_logprob, advantages, clip_coef)
    adv, p_i = advantages.to(log_p.dtype), log_pi.exp()
    return (-l_clip * adv + 2.0 * alpha * l_clip * p_i - alpha**2 * p_i.pow(2) * log_pi).mean()


@register_ppo_loss("weighted_policy", label="Weighted policy", color="#9467bd",
                   dash=(0, (1, 1)), needs_action_counts=True)
def weighted_policy(logits, actions, old_logprob, advantages, *, clip_coef, action_counts,
                    log_probs=None):
    """Beyond the paper: eq. 10's per-sample term ``-L_clip`` weighted by ``1 / n_a`` (n_a:
    how often action a occurs in the rollout), as the weighted mean ``sum w l / sum w``:
    the RL analogue of ``weighted_ce`` (docs/choices.md)."""
    log_p = float_log_probs(logits) if log_probs is None else log_probs
    l_clip, _ = clipped_surrogate(log_p, actions, old_logprob, advantages, clip_coef)
    w = action_counts.reciprocal()[actions.long()].to(log_p.dtype)
    return -(w * l_clip).sum() / w.sum()


@register_ppo_loss("resampled_policy", label="Resampled policy", color="#8c564b",
                   dash=(0, (3, 1, 1, 1, 1, 1)), sampling="action_balanced")
def resampled_policy(logits, actions, old_logprob, advantages, *, clip_coef, log_probs=None):
    """Beyond the paper: eq. 10 on samples the update draws with every action equally likely
    (``sampling="action_balanced"``, ``scopeloss.rl.update``): the RL analogue of
    class-balanced sampling (docs/choices.md)."""
    return policy(logits, actions, old_logprob, advantages, clip_coef=clip_coef,
                  log_probs=log_probs)


# ----------------------------------------------------------------------------- supervised
# Registered in the column order of the paper's Tables 1-2, then the imbalance baselines.
@register_supervised_loss("pel", alpha=param(8e-6, low=0), label="PEL", color="#ff7f0e")
def pel(logits, targets, *, alpha):
    """Eq. 5: cross entropy plus alpha times the negative entropy (alpha: paper, Table 4)."""
    log_p = float_log_probs(logits)
    log_pi = log_p.gather(1, targets[:, None]).squeeze(1)
    return (-log_pi + alpha * (log_p.exp() * log_p).sum(dim=1)).mean()


@register_supervised_loss("scope", alpha=param(1.0, low=0, high=1), label="SL",
                          color="#2ca02c")
def scope_supervised(logits, targets, *, alpha):
    """Eq. 7/8: ``-(1 - alpha p_i) log p_i``."""
    log_pi = float_log_probs(logits).gather(1, targets[:, None]).squeeze(1)
    return -((1.0 - alpha * log_pi.exp()) * log_pi).mean()


@register_supervised_loss("focal", gamma=param(2.0, low=0), label="FL", color="#d62728")
def focal_supervised(logits, targets, *, gamma):
    """Eq. 2: ``-(1 - p_i)^gamma log p_i``."""
    log_pi = float_log_probs(logits).gather(1, targets[:, None]).squeeze(1)
    return -((1.0 - log_pi.exp()).pow(gamma) * log_pi).mean()


@register_supervised_loss("ce", label="CEL", color="#1f77b4")
def ce(logits, targets):
    """Eq. 1: cross entropy."""
    return -float_log_probs(logits).gather(1, targets[:, None]).mean()


@register_supervised_loss("weighted_ce", label="Weighted CE", color="#9467bd",
                          needs_class_counts=True)
def weighted_ce(logits, targets, *, class_counts):
    """Beyond the paper: inverse-frequency class weights ``n / (C n_c)``, weighted mean as in
    ``F.cross_entropy(weight=...)`` (Cui et al. 2019 style)."""
    log_pi = float_log_probs(logits).gather(1, targets[:, None]).squeeze(1)
    weights = class_counts.sum() / (class_counts.numel() * class_counts)
    w = weights[targets]
    return -(w * log_pi).sum() / w.sum()


@register_supervised_loss("balanced_softmax", label="Balanced Softmax", color="#8c564b",
                          needs_class_counts=True)
def balanced_softmax(logits, targets, *, class_counts):
    """Beyond the paper: cross entropy of ``logits + log prior`` (Ren et al. 2020)."""
    log_p = float_log_probs(logits)
    log_p = torch.log_softmax(log_p + torch.log(class_counts / class_counts.sum()), dim=-1)
    return -log_p.gather(1, targets[:, None]).mean()


# ----------------------------------------------------------------------------- the field's
# The long-tail field's losses (beyond the paper), registered through the public API only:
# each needs the class counts, so none runs in a re-sampling experiment (double correction).
def log_prior(class_counts: Tensor) -> Tensor:
    """log of the training split's class frequencies."""
    return torch.log(class_counts / class_counts.sum())


def effective_number_weights(class_counts: Tensor, beta: float) -> Tensor:
    """Cui et al. (2019): ``(1 - beta) / (1 - beta^n_c)``, scaled to sum to the number of
    classes (beta 0: every class 1; beta -> 1: inverse frequency)."""
    w = (1.0 - beta) / (1.0 - torch.pow(beta, class_counts))
    return w * (class_counts.numel() / w.sum())


def _weighted_mean(per_sample: Tensor, weights: Tensor | None) -> Tensor:
    """The batch mean, or ``sum w l / sum w`` as ``F.cross_entropy(weight=...)`` takes it."""
    return per_sample.mean() if weights is None else (weights * per_sample).sum() / weights.sum()


@register_supervised_loss("ldam_drw", max_margin=param(0.5, low=0),
                          scale=param(30.0, low=0, open_low=True),
                          drw_start=param(0.8, low=0, high=1),
                          beta=param(0.9999, low=0, high=1, open_high=True),
                          needs=("class_counts", "progress"), label="LDAM-DRW")
def ldam_drw(logits, targets, *, class_counts, progress, max_margin, scale, drw_start, beta):
    """Cao et al. (2019): cross entropy of ``scale * (logits - m_y 1_y)`` with label-distribution
    -aware margins ``m_c`` proportional to ``n_c^(-1/4)``, the largest ``max_margin``; from
    ``drw_start`` of the run on (deferred re-weighting), each sample weighted by its class's
    effective-number weight (beta), as their code's ``per_cls_weights``."""
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    margins = class_counts.to(dtype).pow(-0.25)
    margins = margins * (max_margin / margins.max())
    target = torch.zeros_like(logits, dtype=dtype).scatter_(1, targets[:, None], 1.0)
    log_p = float_log_probs(scale * (logits.to(dtype) - target * margins[targets][:, None]))
    nll = -log_p.gather(1, targets[:, None]).squeeze(1)
    weights = (effective_number_weights(class_counts.to(dtype), beta)[targets]
               if progress >= drw_start else None)
    return _weighted_mean(nll, weights)


@register_supervised_loss("logit_adjusted", tau=param(1.0, low=0),
                          needs=("class_counts",), label="LA loss")
def logit_adjusted(logits, targets, *, class_counts, tau):
    """Menon et al. (2021), the loss form: cross entropy of ``logits + tau log prior``
    (tau 1 is Balanced Softmax's)."""
    log_p = float_log_probs(logits)
    log_p = torch.log_softmax(log_p + tau * log_prior(class_counts).to(log_p.dtype), dim=-1)
    return -log_p.gather(1, targets[:, None]).mean()


def _posthoc_adjusted(logits, *, class_counts, tau):
    """Menon et al. (2021), post-hoc: predict from ``logits - tau log prior``."""
    log_p = float_log_probs(logits)
    return log_p - tau * log_prior(class_counts).to(log_p.dtype)


@register_supervised_loss("la_posthoc", tau=param(1.0, low=0), needs=("class_counts",),
                          eval_logits=_posthoc_adjusted, label="LA post-hoc")
def la_posthoc(logits, targets, *, class_counts, tau):
    """Cross entropy while training; every validation and test prediction made from the
    logits adjusted post hoc (``_posthoc_adjusted``)."""
    return ce(logits, targets)


@register_supervised_loss("class_balanced", beta=param(0.9999, low=0, high=1, open_high=True),
                          gamma=param(0.0, low=0), needs=("class_counts",), label="CB loss")
def class_balanced(logits, targets, *, class_counts, beta, gamma):
    """Cui et al. (2019): each sample weighted by its class's effective-number weight, the
    weighted mean of cross entropy (gamma 0) or of softmax focal loss ``-(1 - p_i)^gamma
    log p_i`` (gamma > 0)."""
    log_pi = float_log_probs(logits).gather(1, targets[:, None]).squeeze(1)
    per_sample = -log_pi if gamma == 0 else -((1.0 - log_pi.exp()).pow(gamma) * log_pi)
    weights = effective_number_weights(class_counts.to(log_pi.dtype), beta)[targets]
    return _weighted_mean(per_sample, weights)


PPO_LOSSES = registry.names("ppo")  # the built-ins (a user's module adds to the registry)
SUPERVISED_LOSSES = registry.names("supervised")
