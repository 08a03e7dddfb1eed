"""Batched image augmentation on the training device (the paper's Table 5).

Each image of a batch draws its own factors ``f ~ N(mean, std)``, clamped to the valid
range ``f >= 0``, for colour (PIL's ImageEnhance.Color, i.e. saturation), contrast,
brightness and sharpness; then a crop of ``image_size`` at a uniformly drawn position
(after zero-padding by ``crop_padding``) and a horizontal flip with probability ``flip_p``.
The enhancement ops (``scopeloss.classify.enhance``) take one factor per image. Order: crop,
flip, brightness, contrast, colour, sharpness (fixed; the paper gives none).

Random numbers come from a CPU ``torch.Generator``, so a run is reproducible across devices
and resumable from the generator's saved state. All draws of a batch (crop offsets, flips,
the four factors) are stacked into one small tensor and copied to the device once, without
blocking (from pinned memory on CUDA): no host synchronisation per batch. The normalisation
constants are made once per device and dtype.

CUDA (Ahn, Ko, Yun, ICLR 2023; beyond the paper) raises the strength per class: an image
of class c gets, with probability ``aug_prob``, its class's level l (else level 0), and then,
after Table 5's ops, l of the authors' 22 operations at their level's magnitude
(``scopeloss.classify.curriculum_ops``). Its draws are level-independent and made on the CPU
generator after Table 5's, so the sequence of draws never depends on the levels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from scopeloss.classify import curriculum_ops
from scopeloss.params import AugmentationConfig, CurriculumConfig
from scopeloss.classify.enhance import (adjust_brightness, adjust_contrast,
                                        adjust_saturation, adjust_sharpness)

FACTORS = ("brightness", "contrast", "color", "sharpness")
# ImageNet statistics, torchvision's convention for ResNets.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def sample_factors(n: int, cfg: AugmentationConfig, generator: torch.Generator
                   ) -> dict[str, Tensor]:
    """Per-image enhancement factors ``clamp(N(mean, std), min=0)`` on the CPU."""
    out = {}
    for name in FACTORS:
        mean, std = getattr(cfg, name)
        out[name] = (torch.randn(n, generator=generator) * std + mean).clamp_(min=0.0)
    return out


def host_to_device(t: Tensor, device: torch.device) -> Tensor:
    """Copy a small CPU tensor to ``device`` without a host sync (pinned memory on CUDA; the
    caching host allocator keeps the pinned block alive until the copy has run)."""
    if device.type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def _crop_draws(b: int, h: int, w: int, size: int, flip_p: float,
                generator: torch.Generator) -> list[Tensor]:
    """Crop offsets (y, x) and flip flags of ``b`` images, as float32 rows on the CPU."""
    oy = torch.randint(0, h - size + 1, (b,), generator=generator)
    ox = torch.randint(0, w - size + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < flip_p
    return [oy.float(), ox.float(), flip.float()]


def _crop_flip(x: Tensor, size: int, oy: Tensor, ox: Tensor, flip: Tensor) -> Tensor:
    b = x.shape[0]
    ar = torch.arange(size, device=x.device)
    rows = oy[:, None] + ar                                        # (B, size)
    cols = torch.where(flip[:, None], ox[:, None] + size - 1 - ar, ox[:, None] + ar)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # (B, size, size, C)
    return out.permute(0, 3, 1, 2)


def random_crop_flip(x: Tensor, size: int, padding: int, flip_p: float,
                     generator: torch.Generator) -> Tensor:
    """Crop ``size`` x ``size`` at a uniform position per image (after zero-padding), then
    flip horizontally with probability ``flip_p``; ``x`` is (B, C, S, S)."""
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    b, _, h, w = x.shape
    d = host_to_device(torch.stack(_crop_draws(b, h, w, size, flip_p, generator)), x.device)
    return _crop_flip(x, size, d[0].long(), d[1].long(), d[2] > 0.5)


def center_crop(x: Tensor, size: int) -> Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def augment_batch(x_uint8: Tensor, size: int, cfg: AugmentationConfig,
                  generator: torch.Generator, *, levels: np.ndarray | None = None,
                  curriculum: CurriculumConfig | None = None, force: bool = False) -> Tensor:
    """uint8 (B, 3, S, S) on the device -> augmented float (B, 3, size, size) in [0, 1].
    Every draw is made on the CPU generator (same order as ``random_crop_flip`` then
    ``sample_factors``, then CUDA's) and reaches the device in one non-blocking copy.
    ``levels`` (B,) on the host with ``curriculum``: each image's CUDA level, whose
    operations (``curriculum_ops``) follow Table 5's; ``force`` applies every level (the level
    test), else each with probability aug_prob."""
    p = cfg.crop_padding
    x = F.pad(x_uint8, (p, p, p, p)) if p else x_uint8
    b, _, h, w = x.shape
    rows = _crop_draws(b, h, w, size, cfg.flip_p, generator)
    f = sample_factors(b, cfg, generator)
    rows += [f[k] for k in FACTORS]
    plan = None
    if curriculum is not None:
        assert levels is not None, "a curriculum batch carries its images' levels"
        plan = curriculum_ops.plan(levels, curriculum, generator, force)
        rows += plan.rows
    d = host_to_device(torch.stack(rows), x.device)
    x = _crop_flip(x, size, d[0].long(), d[1].long(), d[2] > 0.5)
    x = x.float().div_(255.0)
    f = dict(zip(FACTORS, d[3:3 + len(FACTORS)]))
    x = adjust_brightness(x, f["brightness"])
    x = adjust_contrast(x, f["contrast"])
    x = adjust_saturation(x, f["color"])
    x = adjust_sharpness(x, f["sharpness"])
    if plan is not None:
        x = curriculum_ops.apply_plan(x, plan, d[3 + len(FACTORS):])
    return x


def eval_batch(x_uint8: Tensor, size: int) -> Tensor:
    return center_crop(x_uint8, size).float().div_(255.0)


@lru_cache(maxsize=None)
def _stats(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(MEAN, dtype=dtype).view(1, 3, 1, 1).to(device)
    std = torch.tensor(STD, dtype=dtype).view(1, 3, 1, 1).to(device)
    return mean, std


def normalize(x: Tensor) -> Tensor:
    mean, std = _stats(x.device, x.dtype)  # made once per device and dtype
    return (x - mean) / std
