"""How a trainer calls a registered loss (``scopeloss.losses`` re-exports all of it): the
input checks, ``BoundLoss`` (a run's loss, looked up once, with the context it needs, its
state and its metrics) and the by-name dispatch ``supervised_loss`` / ``ppo_policy_loss``.
Imports no torch until a loss is called (the Snakefile reads the registry through here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from scopeloss import registry
from scopeloss.lifecycle import LossFailure

if TYPE_CHECKING:
    from torch import Tensor


class _Torch:
    """torch, imported on first use: the Snakefile and the analysis env (no torch) read the
    registry through the loss modules without paying for (or having) torch. Each attribute
    is kept on the instance once looked up, so later uses cost a plain attribute read."""

    def __getattr__(self, name: str) -> Any:
        import torch as real

        value = getattr(real, name)
        setattr(self, name, value)
        return value


torch = _Torch()


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

    def __init__(self, kind: str, loss: str | registry.Loss,
                 params: Mapping[str, float | None] | None = None):
        """``loss``: a registered loss object (a cell's), or a name to look up."""
        self.loss = registry.get(kind, loss) if isinstance(loss, str) else loss
        self.kind, self.name = kind, self.loss.name
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
