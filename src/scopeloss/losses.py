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

from collections.abc import Callable, Mapping
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
    "BoundLoss",
    "metric_columns",
    "board_tag",
    "ppo_policy_loss",
    "supervised_loss",
    "check_index_range",
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


def _given(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a caller set: None keeps the default, also for a loss without that
    parameter (the trainers' and tests' ``alpha=None``)."""
    return {k: v for k, v in params.items() if v is not None}


# ----------------------------------------------------------------------------- dispatch
def _split(kind: str, name: str, value: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """A loss's return: one scalar tensor, or ``(scalar, {name: scalar tensor})`` (shape
    checks only: no host sync)."""
    metrics: Any = {}
    if isinstance(value, tuple) and len(value) == 2:
        value, metrics = value
        if not isinstance(metrics, dict):
            raise LossFailure(f"{kind} {name!r} returned ({type(value).__name__}, "
                              f"{type(metrics).__name__}); its metrics must be a dict "
                              "{name: scalar tensor}")
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 0:
        what = (f"a tensor of shape {tuple(shape)}" if shape is not None
                else f"a {type(value).__name__}")
        raise LossFailure(f"{kind} {name!r} returned {what}; a loss returns one scalar "
                          "tensor (the batch mean), or (scalar, {name: scalar tensor})")
    for key, metric in metrics.items():
        mshape = getattr(metric, "shape", None)
        if not (isinstance(key, str) and registry.NAME.match(key)) or mshape is None \
                or len(mshape) != 0:
            what = f"shape {tuple(mshape)}" if mshape is not None else type(metric).__name__
            raise LossFailure(f"{kind} {name!r}: metric {key!r} must be a scalar tensor "
                              f"under a name of letters, digits and underscores, got {what}")
    return value, metrics


class BoundLoss:
    """One run's loss, looked up and checked once: the registered loss with its parameters,
    the context it declared it needs (``set`` by the trainer per epoch or update), the
    ``state`` it owns, and its metrics summed on the device (``take_metrics``: the means
    since the last take, still on the device, for the trainer's one host sync)."""

    def __init__(self, kind: str, name: str, params: Mapping[str, float | None] | None = None):
        self.loss = registry.get(kind, name)
        self.kind, self.name = kind, name
        self.params = registry.params_of(self.loss, _given(params or {}))
        self.context: dict[str, Any] = {}
        self.state: dict[str, Tensor] = {}
        self._sums: dict[str, Tensor] = {}
        self._recorded = 0

    @property
    def counts_key(self) -> str:
        return registry.COUNTS_ARG[self.kind]

    def set(self, **context: Any) -> None:
        """Context for the calls that follow (only what the loss needs is handed to it)."""
        self.context.update(context)

    def _kwargs(self, scratch_state: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(self.params)
        for need in self.loss.needs:
            if need == "state":  # evaluation must not move the loss's state
                kwargs["state"] = ({k: v.clone() for k, v in self.state.items()}
                                   if scratch_state else self.state)
            elif self.context.get(need) is None:
                raise ValueError(f"{KIND[self.kind]} {self.name!r} needs {need}, which its "
                                 "caller did not give")
            else:
                kwargs[need] = self.context[need]
        return kwargs

    def _record(self, metrics: dict[str, Tensor], device) -> None:
        for key, metric in metrics.items():
            metric = metric.detach().float().to(device, non_blocking=True)
            self._sums[key] = self._sums[key] + metric if key in self._sums else metric
        self._recorded += 1

    def supervised(self, logits: Tensor, targets: Tensor, *, record: bool = True) -> Tensor:
        """The batch-mean loss; ``record=False`` (evaluation): no metrics recorded, and a
        stateful loss sees a copy of its state."""
        kwargs = self._kwargs(scratch_state=not record)
        value, metrics = _split(KIND["supervised"], self.name,
                                self.loss.function(logits, targets.long(), **kwargs))
        if record and metrics:
            self._record(metrics, value.device)
        return value

    def ppo(self, logits: Tensor, actions: Tensor, old_logprob: Tensor, advantages: Tensor, *,
            clip_coef: float, log_probs: Tensor | None = None, record: bool = True) -> Tensor:
        kwargs = self._kwargs(scratch_state=False)
        if self.loss.takes_log_probs and log_probs is not None:
            kwargs["log_probs"] = log_probs
        value, metrics = _split(KIND["ppo"], self.name, self.loss.function(
            logits, actions, old_logprob.detach(), advantages.detach(), clip_coef=clip_coef,
            **kwargs))
        if record and metrics:
            self._record(metrics, value.device)
        return value

    def eval_logits(self, logits: Tensor) -> Tensor:
        """The logits a prediction is made from: the loss's ``eval_logits`` of them, if any."""
        if self.loss.eval_logits is None:
            return logits
        kwargs = self._kwargs(scratch_state=True)
        out = self.loss.eval_logits(logits, **kwargs)
        if getattr(out, "shape", None) != logits.shape:
            got = getattr(out, "shape", None)
            raise LossFailure(f"{KIND[self.kind]} {self.name!r}: eval_logits returned "
                              f"{tuple(got) if got is not None else type(out).__name__}, not "
                              f"the logits' shape {tuple(logits.shape)}")
        return out

    def take_metrics(self) -> dict[str, Tensor]:
        """The metrics' means since the last take (device tensors), and a fresh start."""
        means = {k: v / self._recorded for k, v in self._sums.items()}
        self._sums, self._recorded = {}, 0
        return means

    def state_dict(self) -> dict[str, Tensor]:
        """The loss's state as CPU copies, for a checkpoint."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.state.items()}

    def load_state_dict(self, state: dict[str, Tensor] | None, device) -> None:
        """The state a checkpoint saved, on ``device``, in place of the current one."""
        self.state.clear()
        self.state.update({k: v.to(device) for k, v in (state or {}).items()})


KIND = {"ppo": "PPO policy loss", "supervised": "supervised loss"}
METRIC = "loss_"  # a loss's metric <name> is the log column loss_<name>


def metric_columns(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """A log's columns: ``columns``, then the loss's metric columns its rows carry."""
    seen = dict.fromkeys(k for row in rows for k in row if k.startswith(METRIC))
    return list(columns) + [k for k in seen if k not in columns]


def board_tag(key: str, group: str = "train") -> str:
    """A log column's TensorBoard tag: a loss's metric under ``loss/``, else ``group/``."""
    return f"loss/{key[len(METRIC):]}" if key.startswith(METRIC) else f"{group}/{key}"


def supervised_loss(name: str, logits: Tensor, targets: Tensor, *, class_counts=None,
                    progress: float | None = None, epoch: int | None = None,
                    state: dict | None = None, check_range: bool = True,
                    **params: float | None) -> Tensor:
    """Batch-mean classification loss ``name`` for ``logits`` (B, C), ``targets`` (B,), with
    the context the loss declared it needs (metrics it reports are dropped: a trainer uses
    ``BoundLoss``). ``params`` override the loss's registered defaults (None keeps the
    default). ``check_range=False`` skips the per-call value checks (host syncs) for a caller
    that validated labels and counts once where they enter; shapes and dtypes are always
    checked."""
    bound = BoundLoss("supervised", name, params)
    _check_index("targets", targets, logits, check_range)
    if "class_counts" in bound.loss.needs and class_counts is not None:
        class_counts = _counts("class_counts", class_counts, logits, check_range)
    bound.set(class_counts=class_counts, progress=progress, epoch=epoch)
    if state is not None:
        bound.state = state
    return bound.supervised(logits, targets)


def ppo_policy_loss(name: str, logits: Tensor, actions: Tensor, old_logprob: Tensor,
                    advantages: Tensor, *, clip_coef: float, check_range: bool = True,
                    log_probs: Tensor | None = None, action_counts=None,
                    progress: float | None = None, update: int | None = None,
                    state: dict | None = None, **params: float | None) -> Tensor:
    """Batch-mean PPO policy loss ``name`` (eqs. 10-14 and the imbalance remedies) to minimise.

    ``advantages`` are expected already normalised (eq. 9) and are treated as constants.
    ``params`` override the loss's registered defaults (None keeps the default);
    ``action_counts`` (A,) are the rollout's action counts, ``progress``, ``update`` and
    ``state`` the rest of the context, for a loss that needs them. ``check_range=False``
    skips the actions' value check; shapes and dtypes are always checked. ``log_probs``, if
    given, must be ``log_softmax`` of ``logits`` in float32: a built-in then reuses them.
    """
    bound = BoundLoss("ppo", name, params)
    check_ppo_inputs(logits, actions, old_logprob, advantages, clip_coef, check_range)
    if "action_counts" in bound.loss.needs and action_counts is not None:
        action_counts = _counts("action_counts", action_counts, logits, check_range,
                                actions.long())
    bound.set(action_counts=action_counts, progress=progress, update=update)
    if state is not None:
        bound.state = state
    return bound.ppo(logits, actions, old_logprob, advantages, clip_coef=clip_coef,
                     log_probs=log_probs)


def check_ppo_inputs(logits: Tensor, actions: Tensor, old_logprob: Tensor, advantages: Tensor,
                     clip_coef: float, check_range: bool = True) -> None:
    """Shapes, dtypes and (``check_range``) the actions' values of a PPO loss call."""
    _check_index("actions", actions, logits, check_range)
    batch = logits.shape[0]
    _check_vector("old_logprob", old_logprob, batch)
    _check_vector("advantages", advantages, batch)
    if not clip_coef > 0:
        raise ValueError(f"clip_coef must be positive, got {clip_coef}")


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
