"""How each epoch's training images are drawn (beyond the paper, issue 15): naturally (a
permutation, the paper's setting), class-balanced or square-root re-sampled."""

from __future__ import annotations

import numpy as np
import torch

from scopeloss.config_keys import ConfigError


def class_probabilities(counts, sampling: str) -> np.ndarray:
    """Probability of drawing each class per draw: natural n_c / n, class_balanced uniform
    over the classes that have images, sqrt proportional to sqrt(n_c)."""
    n = np.asarray(counts, dtype=np.float64)
    if sampling == "natural":
        w = n
    elif sampling == "class_balanced":
        w = (n > 0).astype(np.float64)
    elif sampling == "sqrt":
        w = np.sqrt(n)
    else:
        raise ConfigError(f"unknown experiment.sampling {sampling!r}")
    return w / w.sum()


def epoch_indices(labels: np.ndarray, counts, sampling: str, gen: torch.Generator) -> np.ndarray:
    """The training-image indices of one epoch, as many as the training set, drawn with the
    run's generator: a permutation for natural sampling (the paper's setting), else images
    drawn with replacement with weight p_c / n_c (``class_probabilities``)."""
    n = len(labels)
    if sampling == "natural":
        return torch.randperm(n, generator=gen).numpy()
    counts = np.asarray(counts, dtype=np.float64)
    per_image = class_probabilities(counts, sampling)[labels] / counts[labels]
    weights = torch.from_numpy(per_image)
    return torch.multinomial(weights, n, replacement=True, generator=gen).numpy()
