"""Learning-rate schedules of both trainers, as ``torch.optim.lr_scheduler.LambdaLR``.

``make_schedule(optimizer, kind, total)`` with ``kind``: ``constant``; ``linear`` (from the
optimiser's lr down towards 0 over ``total`` steps: CleanRL's ``anneal_lr``, the lr of step
k is lr * (1 - k / total)); ``cosine`` (lr * (1 + cos(pi k / total)) / 2, reaching 0 at
``total``); ``warmup_step`` (the long-tail field's recipe, Cao et al. 2019's code at 200
epochs: a linear warm-up over the first 2.5 % of steps (their 5 epochs), then lr, x0.01 from
80 % (epoch 160) and x0.0001 from 90 % (epoch 180), as fractions so that any budget keeps
its shape). The caller steps it once per optimiser step (classifier) or per update (PPO);
its ``state_dict`` goes into the checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine", "warmup_step")


def schedule_factor(kind: str, step: int, total: int) -> float:
    """The lr multiplier after ``step`` of ``total`` scheduler steps."""
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return 1.0 - step / total
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    if kind == "warmup_step":
        done = step / total
        if done < 0.025:
            return (step + 1) / (0.025 * total)
        return 1.0e-4 if done >= 0.9 else 1.0e-2 if done >= 0.8 else 1.0
    raise ValueError(f"unknown schedule {kind!r}; allowed: {', '.join(SCHEDULES)}")


def make_schedule(optimizer, kind: str, total: int):
    import torch

    schedule_factor(kind, 0, max(total, 1))  # an unknown kind fails here, not at step 1
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule_factor(kind, step, max(total, 1)))
