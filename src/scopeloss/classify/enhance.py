"""PIL's ImageEnhance operations on a batch, one factor per image.

Each follows torchvision's ``adjust_*`` formulas (blend with a degenerate image, clamped to
[0, 1]) but takes a (B,) factor tensor, vectorised over the batch (torchvision's functional
API takes one scalar per call). Used by the paper's Table 5 augmentation and by CUDA's
Color/Contrast/Brightness/Sharpness operations.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

# PIL.ImageFilter's 3x3 kernels: weights and scale.
PIL_KERNELS = {
    "edge_enhance": ([-1, -1, -1, -1, 10, -1, -1, -1, -1], 2.0),
    "detail": ([0, -1, 0, -1, 10, -1, 0, -1, 0], 6.0),
    "smooth": ([1, 1, 1, 1, 5, 1, 1, 1, 1], 13.0),
}


@lru_cache(maxsize=None)
def pil_kernel(name: str, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(1, 1, 3, 3) weights / scale of a PIL kernel, made once per device and dtype (no
    host-to-device copy per batch)."""
    weights, scale = PIL_KERNELS[name]
    return (torch.tensor(weights, dtype=dtype) / scale).view(1, 1, 3, 3).to(device)


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
    blurred = F.conv2d(x, pil_kernel("smooth", x.device, x.dtype).expand(c, 1, 3, 3), groups=c)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = blurred
    return _blend(x, degenerate, factor)
