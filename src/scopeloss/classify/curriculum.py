"""CUDA, the Curriculum of Data Augmentation (Ahn, Ko, Yun, ICLR 2023), beyond the paper:
per-class augmentation strength levels, tested after every epoch (``level_test``) and
stepped up or down (``step_levels``); ``Curriculum`` holds the levels and their log.

Called "the curriculum" in the code (its config key is ``experiment.cuda``, the method's
name), so that it never reads like the GPU's ``device.type == "cuda"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from scopeloss import atomic
from scopeloss.classify import augment as aug
from scopeloss.classify.engine import Augmenting, Compute, labels_to_device, to_device
from scopeloss.params import CurriculumConfig

OUTPUT = "cuda_levels.csv"
COLUMNS = ["epoch", "class", "name", "train_count", "level", "accuracy", "next_level"]


def step_levels(levels: np.ndarray, correct: np.ndarray, trials: np.ndarray, threshold: float,
                max_level: int) -> tuple[np.ndarray, np.ndarray]:
    """CUDA's step rule (authors' code, update_score_base): class c at level L goes to L + 1
    when its accuracy at every tested level 0..L exceeds ``threshold``, else to L - 1,
    clamped to [0, max_level]. ``correct``/``trials`` are (classes, max_level + 1). Returns
    (new levels, the lowest accuracy over the tested levels per class; nan if untested)."""
    levels = np.asarray(levels, dtype=np.int64)
    new, worst = levels.copy(), np.full(len(levels), np.nan)
    for c, level in enumerate(levels):
        t = trials[c, :level + 1]
        ratio = np.divide(correct[c, :level + 1], t, out=np.full(level + 1, np.nan),
                          where=t > 0)
        up = bool(np.all(ratio > threshold))  # nan (never tested) counts as not fitted
        new[c] = min(level + 1, max_level) if up else max(level - 1, 0)
        worst[c] = np.nan if np.isnan(ratio).all() else np.nanmin(ratio)
    return new, worst


@torch.no_grad()
def level_test(forward, model, split, levels: np.ndarray, curriculum: CurriculumConfig, *,
               augmenting: Augmenting, batch_size: int, compute: Compute
               ) -> tuple[np.ndarray, np.ndarray]:
    """CUDA's Level-of-Learning test: for every class c and level l <= levels[c],
    num_test * (l + 1) training images of c (drawn with replacement by
    ``augmenting.generator``) augmented at level l (always applied) and classified in eval
    mode. Returns (correct, trials), each (classes, max_level + 1); one host sync at the end."""
    gen, device = augmenting.generator, compute.device
    num_classes, width = len(levels), curriculum.max_level + 1
    picked: list[np.ndarray] = []
    picked_levels: list[np.ndarray] = []
    for c in range(num_classes):
        members = np.flatnonzero(split.labels == c)
        if members.size == 0:
            continue
        for level in range(int(levels[c]) + 1):
            k = curriculum.num_test * (level + 1)
            picked.append(members[torch.randint(members.size, (k,), generator=gen).numpy()])
            picked_levels.append(np.full(k, level, dtype=np.int64))
    correct = torch.zeros(num_classes * width, device=device)
    trials = torch.zeros(num_classes * width, device=device)
    if picked:
        idx, lvl = np.concatenate(picked), np.concatenate(picked_levels)
        was_training = model.training
        model.eval()
        for start in range(0, len(idx), batch_size):
            bi, bl = idx[start:start + batch_size], lvl[start:start + batch_size]
            xb = to_device(split.images, bi, device)
            yb = labels_to_device(split.labels, bi, device)
            lv = aug.host_to_device(torch.from_numpy(bl), device)
            assert augmenting.cfg is not None  # the curriculum needs augment: true
            x = aug.augment_batch(xb, augmenting.image_size, augmenting.cfg, gen, levels=bl,
                                  curriculum=curriculum, force=True)
            with compute.autocast():
                logits = forward(compute.input(x))
            key = yb * width + lv
            correct.index_add_(0, key, (logits.float().argmax(1) == yb).float())
            trials.index_add_(0, key, torch.ones_like(key, dtype=trials.dtype))
        model.train(was_training)
    return (correct.view(num_classes, width).cpu().numpy().astype(np.float64),
            trials.view(num_classes, width).cpu().numpy().astype(np.float64))


class Curriculum:
    """The per-class levels of one run (on the host: the augmentation plans each batch's
    operations there), the log of every step (``cuda_levels.csv``), their checkpoint state."""

    def __init__(self, settings: CurriculumConfig, num_classes: int):
        self.settings = settings
        self.levels = np.zeros(num_classes, dtype=np.int64)  # start at 0, as CUDA
        self.log: list[dict] = []

    def state_dict(self) -> dict:
        return {"cuda_levels": self.levels.copy(), "cuda_log": self.log}

    def load_state_dict(self, state: dict) -> None:
        self.levels = np.asarray(state.get("cuda_levels", self.levels), dtype=np.int64)
        self.log = state.get("cuda_log", [])

    def step(self, epoch: int, forward, model, split, *, augmenting: Augmenting,
             batch_size: int, compute: Compute, classes, train_counts) -> None:
        """Test each class at its levels (``level_test``), then step the levels."""
        correct, trials = level_test(forward, model, split, self.levels, self.settings,
                                     augmenting=augmenting, batch_size=batch_size,
                                     compute=compute)
        new, worst = step_levels(self.levels, correct, trials, self.settings.threshold,
                                 self.settings.max_level)
        self.log += [{"epoch": epoch, "class": c, "name": classes[c],
                      "train_count": int(train_counts[c]), "level": int(self.levels[c]),
                      "accuracy": float(worst[c]), "next_level": int(new[c])}
                     for c in range(len(new))]
        self.levels = new

    def write(self, out) -> None:
        atomic.write_csv(out / OUTPUT, pd.DataFrame(self.log, columns=COLUMNS))
