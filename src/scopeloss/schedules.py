"""Learning-rate schedules of both trainers, as ``torch.optim.lr_scheduler.LambdaLR``.

``make_schedule(optimizer, kind, total)`` with ``kind``: ``constant``; ``linear`` (from the
optimiser's lr down towards 0 over ``total`` steps: CleanRL's ``anneal_lr``, the lr of step
k is lr * (1 - k / total)); ``cosine`` (lr * (1 + cos(pi k / total)) / 2, reaching 0 at
``total``). The caller steps it once per optimiser step (classifier) or per update (PPO);
its ``state_dict`` goes into the checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def schedule_factor(kind: str, step: int, total: int) -> float:
    """The lr multiplier after ``step`` of ``total`` scheduler steps."""
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return 1.0 - step / total
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    raise ValueError(f"unknown schedule {kind!r}; allowed: {', '.join(SCHEDULES)}")


def make_schedule(optimizer, kind: str, total: int):
    import torch

    schedule_factor(kind, 0, max(total, 1))  # an unknown kind fails here, not at step 1
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(kind, step, max(total, 1)))
