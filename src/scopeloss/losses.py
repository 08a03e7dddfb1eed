"""Every loss of the paper, as pure functions: tensors in, a scalar batch mean out.

Equation numbers are those of *Scope Loss for Imbalanced Classification and RL
Exploration*. All probabilities come from ``log_softmax`` computed in float32 (float64
stays float64, which ``gradcheck`` needs), so bf16/fp16 logits under autocast lose no
precision in the loss. Every ``p_i`` and ``p_j`` term is a function of ``logits`` and
carries gradient; the advantage is a constant.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "SUPERVISED_LOSSES",
    "PPO_LOSSES",
    "SUPERVISED_DEFAULTS",
    "PPO_DEFAULTS",
    "supervised_loss",
    "ppo_policy_loss",
    "check_index_range",
]

from scopeloss.params import (COUNT_CORRECTING_LOSSES, PPO_DEFAULTS,  # noqa: E402
                              SUPERVISED_DEFAULTS)

SUPERVISED_LOSSES = tuple(SUPERVISED_DEFAULTS)
PPO_LOSSES = tuple(PPO_DEFAULTS)
_NEEDS_COUNTS = set(COUNT_CORRECTING_LOSSES)


def _check_name(name: str, allowed: tuple[str, ...], what: str) -> None:
    if name not in allowed:
        raise ValueError(f"unknown {what} {name!r}; allowed: {', '.join(allowed)}")


def _log_probs(logits: Tensor) -> Tensor:
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


def _class_counts(counts, num_classes: int, device: torch.device, dtype: torch.dtype,
                  check_values: bool = True) -> Tensor:
    counts = torch.as_tensor(counts, device=device, dtype=dtype)
    if counts.shape != (num_classes,):
        raise ValueError(
            f"class_counts must have shape ({num_classes},) to match the logits, "
            f"got {tuple(counts.shape)}"
        )
    if check_values and bool((counts <= 0).any()):  # a host sync: skipped when pre-checked
        raise ValueError("class_counts must be positive for every class (a class with no "
                         "training example has no prior)")
    return counts


def supervised_loss(
    name: str,
    logits: Tensor,
    targets: Tensor,
    *,
    alpha: float | None = None,
    gamma: float | None = None,
    class_counts=None,
    check_range: bool = True,
) -> Tensor:
    """Batch-mean classification loss ``name`` for ``logits`` (B, C), ``targets`` (B,).

    A trainer that validated its labels and class counts once where the data enters passes
    ``check_range=False``: the per-call value checks (host syncs) are skipped; shapes and
    dtypes are always checked.

    ce (eq. 1), focal (eq. 2, gamma 2), pel (eq. 5, alpha 8e-6), scope (eq. 7/8, alpha 1),
    weighted_ce (inverse-frequency class weights n / (C n_c), weighted mean as in
    ``F.cross_entropy(weight=...)``) and balanced_softmax (cross entropy of
    ``logits + log prior``, Ren et al. 2020); the last two need ``class_counts`` (C,).
    """
    _check_name(name, SUPERVISED_LOSSES, "supervised loss")
    _check_index("targets", targets, logits, check_range)
    defaults = SUPERVISED_DEFAULTS[name]
    alpha = defaults.get("alpha") if alpha is None else alpha
    gamma = defaults.get("gamma") if gamma is None else gamma
    if name in _NEEDS_COUNTS and class_counts is None:
        raise ValueError(f"supervised loss {name!r} needs class_counts (training count per class)")

    targets = targets.long()
    log_p = _log_probs(logits)
    if name == "balanced_softmax":
        counts = _class_counts(class_counts, logits.shape[1], logits.device, log_p.dtype,
                               check_range)
        log_p = torch.log_softmax(log_p + torch.log(counts / counts.sum()), dim=-1)
    log_pi = log_p.gather(1, targets[:, None]).squeeze(1)
    p_i = log_pi.exp()

    if name in ("ce", "balanced_softmax"):
        return -log_pi.mean()
    if name == "weighted_ce":
        counts = _class_counts(class_counts, logits.shape[1], logits.device, log_p.dtype,
                               check_range)
        weights = counts.sum() / (counts.numel() * counts)
        w = weights[targets]
        return -(w * log_pi).sum() / w.sum()
    if name == "focal":
        return -((1.0 - p_i).pow(gamma) * log_pi).mean()
    if name == "pel":
        neg_entropy = (log_p.exp() * log_p).sum(dim=1)
        return (-log_pi + alpha * neg_entropy).mean()
    # scope
    return -((1.0 - alpha * p_i) * log_pi).mean()


def ppo_policy_loss(
    name: str,
    logits: Tensor,
    actions: Tensor,
    old_logprob: Tensor,
    advantages: Tensor,
    *,
    clip_coef: float,
    alpha: float | None = None,
    check_range: bool = True,
    log_probs: Tensor | None = None,
) -> Tensor:
    """Batch-mean PPO policy loss ``name`` (eqs. 10-14) to minimise.

    ``L_clip = min(r A, g(eps, A))`` with ``r = p_i / p_i^k``; policy ``-L_clip``,
    policy_entropy ``-L_clip + alpha sum_j p_j log p_j``, scope ``-L_clip + alpha p_i log p_i``,
    focal ``-L_clip A + 2 alpha L_clip p_i - alpha^2 p_i^2 log p_i``. ``advantages`` are
    expected already normalised (eq. 9) and are treated as constants. A caller that has
    checked the actions' range once where they enter (the trainer: once per rollout) passes
    ``check_range=False``; shapes and dtypes are always checked. A caller that needs the
    log-probabilities itself (the trainer's diagnostics) passes ``log_probs``, which must be
    ``log_softmax`` of ``logits`` in float32: they are then computed once.
    """
    _check_name(name, PPO_LOSSES, "PPO policy loss")
    _check_index("actions", actions, logits, check_range)
    batch = logits.shape[0]
    _check_vector("old_logprob", old_logprob, batch)
    _check_vector("advantages", advantages, batch)
    if not clip_coef > 0:
        raise ValueError(f"clip_coef must be positive, got {clip_coef}")
    alpha = PPO_DEFAULTS[name].get("alpha") if alpha is None else alpha

    log_p = _log_probs(logits) if log_probs is None else log_probs
    log_pi = log_p.gather(1, actions.long()[:, None]).squeeze(1)
    adv = advantages.detach().to(log_p.dtype)
    ratio = torch.exp(log_pi - old_logprob.detach().to(log_p.dtype))
    bound = torch.where(adv >= 0, adv * (1.0 + clip_coef), adv * (1.0 - clip_coef))
    l_clip = torch.minimum(ratio * adv, bound)

    if name == "policy":
        loss = -l_clip
    elif name == "policy_entropy":
        loss = -l_clip + alpha * (log_p.exp() * log_p).sum(dim=1)
    elif name == "scope":
        loss = -l_clip + alpha * log_pi.exp() * log_pi
    else:  # focal, gamma fixed at 2 by the derivation of eq. 14
        p_i = log_pi.exp()
        loss = -l_clip * adv + 2.0 * alpha * l_clip * p_i - alpha**2 * p_i.pow(2) * log_pi
    return loss.mean()
