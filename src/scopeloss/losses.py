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

from typing import TYPE_CHECKING, Any

from scopeloss import registry
from scopeloss.lifecycle import LossFailure
from scopeloss.registry import param

if TYPE_CHECKING:
    from torch import Tensor

    from scopeloss.config_keys import Param


class _Torch:
    """torch, imported on first use: the Snakefile and the analysis env (no torch) read the
    registry through this module without paying for (or having) torch."""

    def __getattr__(self, name: str) -> Any:
        import torch as real

        globals()["torch"] = real
        return getattr(real, name)


torch = _Torch()

__all__ = [
    "param",
    "register_ppo_loss",
    "register_supervised_loss",
    "ppo_policy_loss",
    "supervised_loss",
    "check_index_range",
    "clipped_surrogate",
    "float_log_probs",
    "PPO_LOSSES",
    "SUPERVISED_LOSSES",
]


def register_ppo_loss(name: str, *, label: str | None = None, color: str | None = None,
                      dash: Any = None, needs_action_counts: bool = False,
                      sampling: str = "natural", **params: float | Param):
    """Register ``fn(logits, actions, old_logprob, advantages, *, clip_coef, **params)`` (and
    ``action_counts`` (A,) with ``needs_action_counts``) as the PPO policy loss ``name``; it
    returns the batch mean to minimise. ``params`` are its parameters with their defaults, a
    number or ``param(default, low=, high=)`` with bounds (``rl.loss_specs.<name>`` overrides
    them, within the bounds). ``sampling="action_balanced"`` makes the update
    draw its samples with every action equally likely (``resampled_policy``)."""
    return registry.register("ppo", name, params, label=label, color=color, dash=dash,
                             needs_counts=needs_action_counts, sampling=sampling)


def register_supervised_loss(name: str, *, label: str | None = None, color: str | None = None,
                             dash: Any = None, needs_class_counts: bool = False,
                             **params: float | Param):
    """Register ``fn(logits, targets, **params)`` (and ``class_counts`` (C,) with
    ``needs_class_counts``) as the classification loss ``name``; it returns the batch mean."""
    return registry.register("supervised", name, params, label=label, color=color, dash=dash,
                             needs_counts=needs_class_counts)


# ----------------------------------------------------------------------------- checks
def float_log_probs(logits: Tensor) -> Tensor:
    """log_softmax in at least float32, whatever the autocast dtype of ``logits``."""
    if not torch.is_floating_point(logits):
        raise TypeError(f"logits must be a floating tensor, got {logits.dtype}")
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return torch.log_softmax(logits.to(dtype), dim=-1)


def check_index_range(name: str, index: Tensor, num_classes: int) -> None:
    """Values of ``index`` must lie in [0, num_classes). On the CPU a ValueError naming the
    range; on an accelerator an asynchronous device-side assert (no host sync: the copy of
    ``min``/``max`` to the host would stall the stream on every call)."""
    if not index.numel():
        return
    if index.device.type != "cpu":
        ok = ((index >= 0) & (index < num_classes)).all()
        torch._assert_async(ok, f"{name} out of range: values must lie in [0, {num_classes - 1}]")
        return
    lo, hi = (int(v) for v in torch.aminmax(index))
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{name} out of range: values must lie in [0, {num_classes - 1}], "
            f"got min {lo}, max {hi}"
        )


def _check_index(name: str, index: Tensor, logits: Tensor, check_range: bool = True) -> None:
    """``index`` must be (B,) integer with values in [0, C) for logits (B, C); the value
    range is checked when ``check_range`` (see ``check_index_range``)."""
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
    if index.dim() != 1 or index.shape[0] != logits.shape[0]:
        raise ValueError(
            f"{name} must have shape ({logits.shape[0]},) to match logits "
            f"{tuple(logits.shape)}, got {tuple(index.shape)}"
        )
    if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {index.dtype}")
    if check_range:
        check_index_range(name, index, logits.shape[1])


def _check_vector(name: str, x: Tensor, batch: int) -> None:
    if x.dim() != 1 or x.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(x.shape)}")


def _counts(name: str, counts, logits: Tensor, check_values: bool, used=None) -> Tensor:
    """Counts per class (C,) as a float tensor on the logits' device; positive where used
    (every class for ``used`` None) when ``check_values`` (a host sync: skipped when the
    caller checked them once)."""
    size = logits.shape[1]
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    counts = torch.as_tensor(counts, device=logits.device, dtype=dtype)
    if counts.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},) to match the logits, "
                         f"got {tuple(counts.shape)}")
    if check_values and bool(((counts if used is None else counts[used]) <= 0).any()):
        raise ValueError(f"{name} must be positive for every "
                         f"{'class (a class with no training example has no prior)' if used is None else 'action in the batch'}")
    return counts


def _given(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a caller set: None keeps the default, also for a loss without that
    parameter (the trainers' and tests' ``alpha=None``)."""
    return {k: v for k, v in params.items() if v is not None}


# ----------------------------------------------------------------------------- dispatch
def _scalar(kind: str, name: str, value: Any) -> Tensor:
    """A loss's value must be one scalar tensor (a shape check: no host sync)."""
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 0:
        what = (f"a tensor of shape {tuple(shape)}" if shape is not None
                else f"a {type(value).__name__}")
        raise LossFailure(f"{kind} loss {name!r} returned {what}; a loss returns one scalar "
                          "tensor (the batch mean)")
    return value


def supervised_loss(name: str, logits: Tensor, targets: Tensor, *, class_counts=None,
                    check_range: bool = True, **params: float | None) -> Tensor:
    """Batch-mean classification loss ``name`` for ``logits`` (B, C), ``targets`` (B,).

    ``params`` override the loss's registered defaults (None keeps the default). A trainer
    that validated its labels and class counts once where the data enters passes
    ``check_range=False``: the per-call value checks (host syncs) are skipped; shapes and
    dtypes are always checked.
    """
    loss = registry.get("supervised", name)
    _check_index("targets", targets, logits, check_range)
    kwargs: dict[str, Any] = registry.params_of(loss, _given(params))
    if loss.needs_counts:
        if class_counts is None:
            raise ValueError(f"supervised loss {name!r} needs class_counts (training count "
                             "per class)")
        kwargs["class_counts"] = _counts("class_counts", class_counts, logits, check_range)
    return _scalar("supervised", name, loss.function(logits, targets.long(), **kwargs))


def ppo_policy_loss(name: str, logits: Tensor, actions: Tensor, old_logprob: Tensor,
                    advantages: Tensor, *, clip_coef: float, check_range: bool = True,
                    log_probs: Tensor | None = None, action_counts=None,
                    **params: float | None) -> Tensor:
    """Batch-mean PPO policy loss ``name`` (eqs. 10-14 and the imbalance remedies) to minimise.

    ``advantages`` are expected already normalised (eq. 9) and are treated as constants.
    ``params`` override the loss's registered defaults (None keeps the default);
    ``action_counts`` (A,) are the rollout's action counts, for a loss that needs them. A
    caller that has checked the actions' range once where they enter (the trainer: once
    per rollout) passes ``check_range=False``; shapes and dtypes are always checked. A caller
    that needs the log-probabilities itself (the trainer's diagnostics) passes ``log_probs``,
    which must be ``log_softmax`` of ``logits`` in float32: a built-in then reuses them.
    """
    loss = registry.get("ppo", name)
    _check_index("actions", actions, logits, check_range)
    batch = logits.shape[0]
    _check_vector("old_logprob", old_logprob, batch)
    _check_vector("advantages", advantages, batch)
    if not clip_coef > 0:
        raise ValueError(f"clip_coef must be positive, got {clip_coef}")
    kwargs: dict[str, Any] = registry.params_of(loss, _given(params))
    if loss.needs_counts:
        if action_counts is None:
            raise ValueError(f"PPO policy loss {name!r} needs action_counts (how often each "
                             "action occurs in the rollout)")
        kwargs["action_counts"] = _counts("action_counts", action_counts, logits, check_range,
                                          actions.long())
    if loss.takes_log_probs and log_probs is not None:
        kwargs["log_probs"] = log_probs
    return _scalar("PPO policy", name, loss.function(
        logits, actions, old_logprob.detach(), advantages.detach(), clip_coef=clip_coef,
        **kwargs))


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


PPO_LOSSES = registry.names("ppo")  # the built-ins (a user's module adds to the registry)
SUPERVISED_LOSSES = registry.names("supervised")
