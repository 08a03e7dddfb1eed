"""Batched image augmentation on the training device (the paper's Table 5).

Each image of a batch draws its own factors ``f ~ N(mean, std)``, clamped to the valid
range ``f >= 0``, for colour (PIL's ImageEnhance.Color, i.e. saturation), contrast,
brightness and sharpness; then a crop of ``image_size`` at a uniformly drawn position
(after zero-padding by ``crop_padding``) and a horizontal flip with probability ``flip_p``.
The enhancement ops follow torchvision's ``adjust_*`` formulas (blend with a degenerate
image, clamped to [0, 1]) but take one factor per image, vectorised over the batch, since
torchvision's functional API takes one scalar per call. Order: crop, flip, brightness,
contrast, colour, sharpness (fixed; the paper gives none).

Random numbers come from a CPU ``torch.Generator``, so a run is reproducible across devices
and resumable from the generator's saved state. All draws of a batch (crop offsets, flips,
the four factors) are stacked into one small tensor and copied to the device once, without
blocking (from pinned memory on CUDA): no host synchronisation per batch. The normalisation
constants are made once per device and dtype.

CUDA (Ahn, Ko, Yun, ICLR 2023; beyond the paper) raises the strength per class: an image
of class c gets, with probability ``aug_prob``, its class's level l (else level 0). The
original applies l operations drawn with replacement from 22 RandAugment-style PIL ops at
magnitude l / max_d; here the operations are Table 5's four enhancement ops, so level l
draws l ops with replacement from those four (an op drawn at least once, probability
1 - (3/4)^l, is applied once) and shifts its factor by +-0.9 * l / max_d (0.9 = half the
width of CUDA's enhancement range [0.1, 1.9], sign drawn per image), on top of the Table
5 factor, clamped at 0. Levels come as a per-image tensor on the device (the class levels
gathered by label): no per-image Python loop, and the level-independent draws (coin, op
choice, sign) are made on the CPU generator after the Table 5 ones, so the sequence of
draws never depends on the levels.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

FACTORS = ("brightness", "contrast", "color", "sharpness")
# ImageNet statistics, torchvision's convention for ResNets.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def sample_factors(n: int, cfg: dict, generator: torch.Generator) -> dict[str, Tensor]:
    """Per-image enhancement factors ``clamp(N(mean, std), min=0)`` on the CPU."""
    out = {}
    for name in FACTORS:
        mean, std = cfg[name]
        out[name] = (torch.randn(n, generator=generator) * std + mean).clamp_(min=0.0)
    return out


def _grayscale(x: Tensor) -> Tensor:
    # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale and PIL's convert("L").
    r, g, b = x.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(img: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    f = factor.view(-1, 1, 1, 1).to(img.dtype)
    return (f * img + (1.0 - f) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    mean = _grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, _grayscale(x), factor)


def adjust_sharpness(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with PIL's SMOOTH-filtered image (kernel [[1,1,1],[1,5,1],[1,1,1]] / 13);
    border pixels stay as they are, as in torchvision and PIL."""
    if x.shape[-1] <= 2 or x.shape[-2] <= 2:
        return x
    c = x.shape[1]
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(c, 1, 3, 3)
    blurred = F.conv2d(x, kernel, groups=c)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = blurred
    return _blend(x, degenerate, factor)


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


CUDA_RANGE_HALF_WIDTH = 0.9  # CUDA's Color/Contrast/Brightness/Sharpness range [0.1, 1.9]


def _cuda_draws(b: int, generator: torch.Generator) -> list[Tensor]:
    """Level-independent CUDA draws of ``b`` images: the aug_prob coin, then per op a
    uniform (is it among the level's ops?) and a sign."""
    coin = torch.rand(b, generator=generator)
    pick = torch.rand(len(FACTORS), b, generator=generator)
    sign = (torch.rand(len(FACTORS), b, generator=generator) < 0.5).float() * 2.0 - 1.0
    return [coin, *pick.unbind(0), *sign.unbind(0)]


def cuda_shifts(levels: Tensor, draws: Tensor, curriculum: dict, force: bool = False) -> Tensor:
    """(4, B) factor shifts of Table 5's ops (order ``FACTORS``) for per-image ``levels``
    (B,) on the device; ``draws`` are the 9 rows of ``_cuda_draws`` on the same device.
    ``force`` applies every image's level (the level test), else with prob. aug_prob."""
    lvl = levels.to(draws.dtype)
    if not force:
        lvl = lvl * (draws[0] < curriculum["aug_prob"]).to(lvl.dtype)
    k = len(FACTORS)
    p_op = 1.0 - (1.0 - 1.0 / k) ** lvl                            # l draws from k ops
    applied = (draws[1:1 + k] < p_op).to(lvl.dtype)                # (4, B)
    magnitude = CUDA_RANGE_HALF_WIDTH * lvl / curriculum["max_d"]
    return draws[1 + k:1 + 2 * k] * applied * magnitude


def augment_batch(x_uint8: Tensor, size: int, cfg: dict, generator: torch.Generator,
                  levels: Tensor | None = None, curriculum: dict | None = None,
                  force: bool = False) -> Tensor:
    """uint8 (B, 3, S, S) on the device -> augmented float (B, 3, size, size) in [0, 1].
    Every draw is made on the CPU generator (same order as ``random_crop_flip`` then
    ``sample_factors``, then CUDA's) and reaches the device in one non-blocking copy.
    ``levels`` (B,) on the device with ``curriculum``: CUDA strength levels per image."""
    p = cfg["crop_padding"]
    x = F.pad(x_uint8, (p, p, p, p)) if p else x_uint8
    b, _, h, w = x.shape
    rows = _crop_draws(b, h, w, size, cfg["flip_p"], generator)
    f = sample_factors(b, cfg, generator)
    rows += [f[k] for k in FACTORS]
    if curriculum is not None:
        rows += _cuda_draws(b, generator)
    d = host_to_device(torch.stack(rows), x.device)
    x = _crop_flip(x, size, d[0].long(), d[1].long(), d[2] > 0.5)
    x = x.float().div_(255.0)
    factors = d[3:3 + len(FACTORS)]
    if curriculum is not None:
        factors = (factors + cuda_shifts(levels, d[3 + len(FACTORS):], curriculum, force)
                   ).clamp_(min=0.0)
    f = dict(zip(FACTORS, factors))
    x = adjust_brightness(x, f["brightness"])
    x = adjust_contrast(x, f["contrast"])
    x = adjust_saturation(x, f["color"])
    return adjust_sharpness(x, f["sharpness"])


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
