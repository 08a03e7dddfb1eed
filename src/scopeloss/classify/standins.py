"""Offline long-tailed stand-ins for Caltech-256, built from scikit-learn's digits (the 1,797
8x8 images it ships; no download).

``digits_lt``: the ten digits, class c keeping floor(max_per_class * ratio ** (-c / 9))
images (head 0, tail 9). Quick, and used by the tests; every loss saturates on it (mean
per-class precision 0.93-0.99), so it cannot separate the losses.

``numbers_lt``: the two-digit numbers 00-99, 100 classes, each image two digit images side
by side (tens left, ones right) on a 16x16 canvas. Class sizes follow the same exponential
profile over a seeded random ranking of the classes (so frequency is unrelated to which
digits a number has): floor(max_per_class * ratio ** (-rank / 99)). A miniature of
Caltech-256's imbalance: many classes, a few dozen images at the head and a handful at the
tail, head/tail ratio ~10 (Caltech-256: 827 / 80), rare classes sharing parts (digits) with
common ones, and a test split as long-tailed as the training one. No digit image is shared
across splits: each split's numbers are composed only from that split's digit images (a
stratified split of the 1,797 digits), so the test measures generalisation, not memory.

Items name their source images: ``digits/<i>`` and ``numbers/<i>-<j>`` (indices into
``load_digits``), so the manifest alone rebuilds the images.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from scopeloss.classify.splits import SPLITS, stratified_split
from scopeloss.params import LongTailConfig

KINDS = ("digits_lt", "numbers_lt")
SOURCE = "sklearn.datasets.load_digits"
NUMBER_CLASSES = 100
# Images of each digit in load_digits (np.bincount of its target; a test checks): the plan
# counts digits_lt's images without importing scikit-learn.
DIGITS_PER_CLASS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)


@lru_cache(maxsize=1)
def _digits():
    """scikit-learn's digits, read once per process (the cache build asks for every split)."""
    from sklearn.datasets import load_digits

    return load_digits()


def exponential_counts(max_per_class: int, ratio: float, ranks: np.ndarray) -> np.ndarray:
    """floor(max_per_class * ratio ** (-rank / (n - 1))) per class, rank 0 the head."""
    n = len(ranks)  # Python's float power (numpy's rounds 10 ** -1 below 0.1)
    return np.array([math.floor(max_per_class * ratio ** (-int(r) / (n - 1))) for r in ranks],
                    dtype=np.int64)


def split_items(dcfg: LongTailConfig) -> tuple[list[str], dict[str, list[list]]]:
    """(class names, {split: [[relative name, label], ...]}) of a stand-in dataset."""
    if dcfg.kind == "digits_lt":
        classes, items = _digits_lt(dcfg)
        labels = [label for _, label in items]
        parts = stratified_split(labels, dcfg.val_fraction, dcfg.test_fraction,
                                 dcfg.split_seed)
        return classes, {s: [list(items[i]) for i in parts[s]] for s in SPLITS}
    return _numbers_lt(dcfg)


def digit_counts(dcfg: LongTailConfig) -> np.ndarray:
    """Images of each digit 0..9 kept by digits_lt, before the split (numpy only)."""
    keep = exponential_counts(dcfg.max_per_class, dcfg.imbalance_ratio, np.arange(10))
    return np.minimum(keep, DIGITS_PER_CLASS)


def _digits_lt(dcfg: LongTailConfig) -> tuple[list[str], list[tuple[str, int]]]:
    target = _digits().target
    rng = np.random.default_rng(dcfg.split_seed)
    items: list[tuple[str, int]] = []
    for c, keep in enumerate(digit_counts(dcfg)):
        idx = np.flatnonzero(target == c)
        chosen = np.sort(rng.choice(idx, size=int(keep), replace=False))
        items.extend((f"digits/{i}", c) for i in chosen)
    return [f"{c:03d}.digit_{c}" for c in range(10)], items


def number_counts(dcfg: LongTailConfig) -> np.ndarray:
    """Images of each number 0..99 before the split (the ranking drawn with split_seed)."""
    ranks = np.random.default_rng(dcfg.split_seed).permutation(NUMBER_CLASSES)
    return exponential_counts(dcfg.max_per_class, dcfg.imbalance_ratio, ranks)


def _numbers_lt(dcfg: LongTailConfig) -> tuple[list[str], dict[str, list[list]]]:
    seed, val, test = dcfg.split_seed, dcfg.val_fraction, dcfg.test_fraction
    counts = number_counts(dcfg)
    # How many images of each number go to each split: the same stratified rule as any
    # dataset; which digit images may compose them: a stratified split of the digits.
    labels = np.repeat(np.arange(NUMBER_CLASSES), counts)
    per_split = {s: np.bincount(labels[idx], minlength=NUMBER_CLASSES)
                 for s, idx in stratified_split(labels, val, test, seed).items()}
    target = _digits().target
    pools = {s: [idx[target[idx] == d] for d in range(10)]
             for s, idx in stratified_split(target, val, test, seed + 1).items()}
    rng = np.random.default_rng(seed + 2)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for s in SPLITS:
        for c in range(NUMBER_CLASSES):
            tens, ones = pools[s][c // 10], pools[s][c % 10]
            # distinct (tens image, ones image) pairs, drawn without replacement
            pick = rng.choice(len(tens) * len(ones), size=int(per_split[s][c]), replace=False)
            out[s].extend([f"numbers/{tens[k // len(ones)]}-{ones[k % len(ones)]}", c]
                          for k in np.sort(pick))
    return [f"{c:03d}.number_{c:02d}" for c in range(NUMBER_CLASSES)], out


def image_count(dcfg: LongTailConfig) -> int:
    """Images of a stand-in before the split (the cost plan's count; numpy only)."""
    counts = digit_counts(dcfg) if dcfg.kind == "digits_lt" else number_counts(dcfg)
    return int(counts.sum())


def images(kind: str, items, size: int) -> np.ndarray:
    """uint8 RGB (N, size, size, 3) of a stand-in's items (bilinear resize from 8 or 16 px)."""
    import torch
    import torch.nn.functional as F

    digits = torch.as_tensor(_digits().images, dtype=torch.float32) / 16.0  # (1797, 8, 8)
    names = [rel.split("/")[1] for rel, _ in items]
    if kind == "digits_lt":
        x = digits[[int(n) for n in names]]
    else:
        pairs = np.array([n.split("-") for n in names], dtype=np.int64).reshape(-1, 2)
        x = torch.zeros(len(pairs), 16, 16)
        x[:, 4:12, :8] = digits[pairs[:, 0]]   # tens on the left,
        x[:, 4:12, 8:] = digits[pairs[:, 1]]   # ones on the right, vertically centred
    x = x[:, None]
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return x.repeat(1, 3, 1, 1).permute(0, 2, 3, 1).contiguous().numpy()

