"""One epoch of training and one evaluation pass (torchvision's reference style:
``train_one_epoch``, ``evaluate``). Batches are gathered from the decode-once uint8 cache,
copied to the device, augmented there (``augment``) and normalised; the step makes no host
synchronisation, an epoch one (its loss and accuracy sums)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from scopeloss.classify import augment as aug
from scopeloss.params import AugmentationConfig


def to_device(images: np.ndarray, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    """Gather uint8 (B, S, S, 3) rows from the (memory-mapped) cache and return them as
    (B, 3, S, S) on ``device``, copied without blocking; the permuted view of NHWC memory
    is already channels_last."""
    batch = torch.from_numpy(np.ascontiguousarray(images[idx]))
    return aug.host_to_device(batch, device).permute(0, 3, 1, 2)


def labels_to_device(labels: np.ndarray, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    return aug.host_to_device(torch.from_numpy(labels[idx]), device)


def prepare_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = aug.normalize(x)
    return x.contiguous(memory_format=torch.channels_last if channels_last else
                        torch.contiguous_format)


@dataclass(frozen=True)
class Compute:
    """Where and how the model computes: the device, NHWC memory format, bf16 autocast (a
    context-manager factory)."""

    device: torch.device
    channels_last: bool
    autocast: Callable[[], ContextManager]

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return prepare_input(x, self.channels_last)


@dataclass(frozen=True)
class Augmenting:
    """How training batches are made: ``cfg`` None = centre crop only; the draws come from
    ``generator``; ``curriculum`` (the run's ``Curriculum``) gives each image's CUDA level."""

    cfg: AugmentationConfig | None
    image_size: int
    generator: torch.Generator
    curriculum: Any = None


def make_train_step(forward, loss_fn, split, *, optimizer, scheduler, augmenting: Augmenting,
                    compute: Compute):
    """The trainer's step (the benchmark times this same function): gather a batch from the
    cache, copy it to the device, augment (or centre-crop), normalise, forward, loss,
    backward, optimiser and scheduler step. Returns the (loss, correct) device scalars;
    nothing in it waits for the device. The curriculum's per-class levels (on the host,
    stepped between epochs) give each image's CUDA level."""
    a, device = augmenting, compute.device

    def step(idx: np.ndarray):
        xb = to_device(split.images, idx, device)
        yb = labels_to_device(split.labels, idx, device)
        if a.cfg is not None:
            x = aug.augment_batch(
                xb, a.image_size, a.cfg, a.generator,
                curriculum=None if a.curriculum is None else a.curriculum.settings,
                levels=None if a.curriculum is None else a.curriculum.levels[split.labels[idx]])
        else:
            x = aug.eval_batch(xb, a.image_size)
        x = compute.input(x)
        with compute.autocast():
            logits = forward(x)
        loss_value = loss_fn(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss_value.backward()
        optimizer.step()
        scheduler.step()
        return loss_value.detach(), (logits.detach().argmax(1) == yb).sum()

    return step


@torch.no_grad()
def evaluate(model, split, *, batch_size: int, image_size: int, loss_fn, compute: Compute,
             predict: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """(mean loss, accuracy, predictions) of ``model`` on ``split``, centre-cropped, in
    batches of ``batch_size``; the predictions are the argmax of float32 logits (the head
    runs in float32), or of ``predict(logits)`` (a loss's post-hoc ``eval_logits``)."""
    model.eval()
    n, device = len(split.labels), compute.device
    loss_sum = torch.zeros((), device=device)
    preds = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        x = compute.input(aug.eval_batch(to_device(split.images, idx, device), image_size))
        y = labels_to_device(split.labels, idx, device)
        with compute.autocast():
            logits = model(x)
        logits = logits.float()
        loss_sum += loss_fn(logits, y).float() * len(idx)
        preds.append((logits if predict is None else predict(logits)).argmax(1))
    out = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, dtype=np.int64)
    return float(loss_sum) / max(n, 1), float((out == split.labels).mean()), out


# --- re-sampling and the CUDA curriculum (beyond the paper) ------------------------------


def train_one_epoch(step, model, perm: np.ndarray, steps: int, batch_size: int,
                    device: torch.device, *, loss=None
                    ) -> tuple[float, float, int, dict[str, float]]:
    """``steps`` steps over the epoch's image order ``perm``; (mean loss, accuracy, images,
    the means of the metrics ``loss`` (a ``BoundLoss``) reported in the epoch)."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for s in range(steps):
        idx = np.sort(perm[s * batch_size:(s + 1) * batch_size])  # sorted: sequential reads
        loss_value, right = step(idx)
        loss_sum += loss_value * len(idx)
        correct += right
        seen += len(idx)
    metrics = loss.take_metrics() if loss is not None else {}
    sums = torch.stack([loss_sum, correct.to(loss_sum.dtype),
                        *(v.to(loss_sum.dtype) for v in metrics.values())]).tolist()
    # the epoch's one sync
    return sums[0] / seen, sums[1] / seen, seen, dict(zip(metrics, sums[2:]))
