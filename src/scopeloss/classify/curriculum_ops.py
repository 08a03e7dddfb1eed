"""CUDA's augmentation operations as its authors define them, batched on the device.

Ahn, Ko & Yun (ICLR 2023), code CUDA_LTR (``cifar/aug/cuda.py``, ``cifar/datasets/
cifar100.py``): an image at level l gets l operations drawn uniformly *with replacement*
from the 22 below (``random.choices(augment_list(), k=l)``), applied in the drawn order,
each at the value ``min + (l / max_d) * (max - min)`` (levels 0..10, max_d 30), so a level
sets both how many operations and how strong. Rotate, ShearX/Y and TranslateX/Y draw their
sign per application (``random.random() > 0.5``). Names, order and (min, max) are the
authors' ``augment_list``; the pixel semantics follow PIL, which their code calls.

Here every op takes a float batch in [0, 1] (B, C, H, W) and a per-image value (B,) on the
device (an image's value depends on its level) and keeps PIL's behaviour: uint8 look-up
ops (autocontrast, equalize, posterize, solarize, solarize-add) quantise to 0..255 as PIL
does; affine ops sample the nearest pixel at PIL's coordinates (pixel centres, fill 0);
3x3 filters keep the border pixels, as PIL. Two departures, both named in the README:
GaussianBlur is an exact Gaussian of sigma = radius (PIL approximates it with box blurs),
and ResizeCrop samples bilinearly instead of PIL's antialiased resize. The pixel-valued
magnitudes (translation, blur radius) were set for CIFAR's 32 px images: they are scaled by
width / 32, so an op removes the same share of any image as of the authors'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from scopeloss.classify.enhance import (adjust_brightness, adjust_contrast, adjust_saturation,
                                        adjust_sharpness, pil_kernel)
from scopeloss.params import CurriculumConfig

AUTHORS_SIZE = 32  # CIFAR: the image size the authors' pixel magnitudes were set for


def _q(x: Tensor) -> Tensor:
    """PIL's uint8 values of a [0, 1] image, as float (exact integers)."""
    return (x * 255.0).round_().clamp_(0.0, 255.0)


def _v(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


# --- look-up-table ops (PIL.ImageOps) -----------------------------------------------------
def flip(x, v, sign):          # ImageOps.flip: top <-> bottom
    return x.flip(-2)


def mirror(x, v, sign):        # ImageOps.mirror: left <-> right
    return x.flip(-1)


def invert(x, v, sign):
    return (255.0 - _q(x)) / 255.0


def autocontrast(x, v, sign):
    """Per channel: lo..hi stretched to 0..255, lut int(i * scale + offset); flat channels
    left as they are (ImageOps.autocontrast, cutoff 0)."""
    q = _q(x)
    lo = q.amin(dim=(-2, -1), keepdim=True)
    hi = q.amax(dim=(-2, -1), keepdim=True)
    span = (hi - lo).clamp_(min=1.0)
    out = ((q - lo) * (255.0 / span)).floor_().clamp_(0.0, 255.0)
    return torch.where(hi > lo, out, q) / 255.0


def equalize(x, v, sign):
    """ImageOps.equalize per channel: step = (pixels - count of the top value) // 255,
    lut[i] = (step // 2 + pixels below i) // step; identity where step is 0."""
    q = _q(x).long()
    b, c, h, w = q.shape
    flat = q.view(b, c, h * w)
    hist = torch.zeros(b, c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(2, flat, torch.ones_like(flat))
    top = hist.gather(2, flat.amax(dim=2, keepdim=True))           # count of the top value
    step = (h * w - top) // 255                                    # (B, C, 1)
    below = hist.cumsum(2) - hist
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp_(max=255)
    out = lut.gather(2, flat).view(b, c, h, w)
    return torch.where((step > 0).view(b, c, 1, 1), out, q).to(x.dtype) / 255.0


def posterize(x, v, sign):
    """Keep max(1, int(v)) high bits (the authors' Posterize)."""
    bits = v.floor().clamp(min=1.0, max=8.0)
    keep = _v(2.0 ** (8.0 - bits))
    return (_q(x) / keep).floor_() * keep / 255.0


def solarize(x, v, sign):
    """Values >= threshold v inverted."""
    q = _q(x)
    return torch.where(q >= _v(v), 255.0 - q, q) / 255.0


def solarize_add(x, v, sign):
    """The authors' SolarizeAdd: uint8(clip(i + v, 0, 255)), then solarize at 128."""
    q = (_q(x) + _v(v)).clamp_(0.0, 255.0).floor_()
    return torch.where(q >= 128.0, 255.0 - q, q) / 255.0


# --- enhancement ops (PIL.ImageEnhance, factor v) -----------------------------------------
def color(x, v, sign):
    return adjust_saturation(x, v)


def contrast(x, v, sign):
    return adjust_contrast(x, v)


def brightness(x, v, sign):
    return adjust_brightness(x, v)


def sharpness(x, v, sign):
    return adjust_sharpness(x, v)


# --- 3x3 filters (PIL.ImageFilter), border pixels kept ------------------------------------
def _filter3x3(x: Tensor, name: str) -> Tensor:
    if x.shape[-1] <= 2 or x.shape[-2] <= 2:
        return x
    c, q = x.shape[1], _q(x)
    k = pil_kernel(name, x.device, x.dtype).expand(c, 1, 3, 3)
    # PIL rounds half up (clip8: value + 0.5, truncated)
    inner = (F.conv2d(q, k, groups=c) + 0.5).floor_().clamp_(0.0, 255.0)
    q[..., 1:-1, 1:-1] = inner  # borders keep their values
    return q / 255.0


def edge_enhance(x, v, sign):
    return _filter3x3(x, "edge_enhance")


def detail(x, v, sign):
    return _filter3x3(x, "detail")


def smooth(x, v, sign):
    return _filter3x3(x, "smooth")


def gaussian_blur(x, v, sign, v_max: float = 2.0):
    """Gaussian of sigma = v * width / 32 per image (zero sigma: unchanged); ``v_max``, a
    host bound of v, sizes the kernel without reading v back from the device."""
    b, c, h, w = x.shape
    sigma = v.to(x.dtype) * (w / AUTHORS_SIZE)
    radius = max(1, math.ceil(3.0 * v_max * w / AUTHORS_SIZE))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.clamp(min=1e-6).view(-1, 1)
    k = torch.exp(-0.5 * (t / s) ** 2)
    k = k / k.sum(dim=1, keepdim=True)                               # (B, K)
    k = torch.where(sigma.view(-1, 1) > 0, k, (t == 0).to(x.dtype))  # sigma 0: identity
    kb = k.repeat_interleave(c, dim=0)                               # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"),
                 kb.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"),
                 kb.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


# --- affine ops: PIL's Image.transform(AFFINE) / rotate, nearest, fill 0 -------------------
def _affine(x: Tensor, coeffs: tuple, mode: str = "nearest") -> Tensor:
    """Output pixel (x, y) takes the input at (a x + b y + c, d x + e y + f), coordinates
    at pixel centres (x + 0.5), as PIL's ``Image.transform(AFFINE, (a, b, c, d, e, f))``;
    each coefficient a (B,) tensor or a number."""
    a, b_, c_, d, e, f = coeffs
    bsz, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype) + 0.5,
                            torch.arange(w, device=x.device, dtype=x.dtype) + 0.5, indexing="ij")

    def col(t):
        return t.view(-1, 1, 1) if torch.is_tensor(t) else t

    xi = col(a) * xs + col(b_) * ys + col(c_)
    yi = col(d) * xs + col(e) * ys + col(f)
    if mode == "nearest":  # PIL takes floor(coordinate); grid_sample would round it
        xi, yi = xi.floor() + 0.5, yi.floor() + 0.5
    xi, yi = torch.broadcast_tensors(xi, yi)
    grid = torch.stack((xi / w * 2.0 - 1.0, yi / h * 2.0 - 1.0), dim=-1).expand(bsz, h, w, 2)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def rotate(x, v, sign):
    """Image.rotate(sign * v): counter-clockwise about the centre."""
    h, w = x.shape[-2:]
    ang = torch.deg2rad(-(v * sign))
    cos, sin = torch.cos(ang), torch.sin(ang)
    cx, cy = w / 2.0, h / 2.0
    return _affine(x, (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy))


def shear_x(x, v, sign):
    return _affine(x, (1.0, v * sign, 0.0, 0.0, 1.0, 0.0))


def shear_y(x, v, sign):
    return _affine(x, (1.0, 0.0, 0.0, v * sign, 1.0, 0.0))


def translate_x(x, v, sign):
    return _affine(x, (1.0, 0.0, v * sign * (x.shape[-1] / AUTHORS_SIZE), 0.0, 1.0, 0.0))


def translate_y(x, v, sign):
    return _affine(x, (1.0, 0.0, 0.0, 0.0, 1.0, v * sign * (x.shape[-1] / AUTHORS_SIZE)))


def resize_crop(x, v, sign):
    """Enlarge by v, crop the centre back to size (the authors' ResizeCrop)."""
    h, w = x.shape[-2:]
    big_w, big_h = torch.floor(w * v), torch.floor(h * v)        # int(width * v), as theirs
    left, top = torch.floor(big_w / 2) - w // 2, torch.floor(big_h / 2) - h // 2
    sx, sy = w / big_w, h / big_h
    return _affine(x, (sx, 0.0, left * sx, 0.0, sy, top * sy), mode="bilinear")


# The authors' augment_list, in their order: (name, op, min, max).
OPS = (
    ("Flip", flip, 0.0, 1.0),
    ("Mirror", mirror, 0.0, 1.0),
    ("EdgeEnhance", edge_enhance, 0.0, 1.0),
    ("Detail", detail, 0.0, 1.0),
    ("Smooth", smooth, 0.0, 1.0),
    ("AutoContrast", autocontrast, 0.0, 1.0),
    ("Equalize", equalize, 0.0, 1.0),
    ("Invert", invert, 0.0, 1.0),
    ("GaussianBlur", gaussian_blur, 0.0, 2.0),
    ("ResizeCrop", resize_crop, 1.0, 1.5),
    ("Rotate", rotate, 0.0, 30.0),
    ("Posterize", posterize, 0.0, 4.0),
    ("Solarize", solarize, 0.0, 256.0),
    ("SolarizeAdd", solarize_add, 0.0, 110.0),
    ("Color", color, 0.1, 1.9),
    ("Contrast", contrast, 0.1, 1.9),
    ("Brightness", brightness, 0.1, 1.9),
    ("Sharpness", sharpness, 0.1, 1.9),
    ("ShearX", shear_x, 0.0, 0.3),
    ("ShearY", shear_y, 0.0, 0.3),
    ("TranslateXabs", translate_x, 0.0, 100.0),
    ("TranslateYabs", translate_y, 0.0, 100.0),
)
NUM_OPS = len(OPS)


def op_value(op: int, m: Tensor) -> Tensor:
    """The authors' value of op ``op`` at magnitude m = level / max_d."""
    _, _, lo, hi = OPS[op]
    return m * (hi - lo) + lo


def apply_op(op: int, x: Tensor, m: Tensor, sign: Tensor, m_max: float = 1.0) -> Tensor:
    """One op on a [0, 1] batch at per-image magnitudes ``m`` (at most ``m_max``, a host
    number) and signs (+-1); returns [0, 1]."""
    _, fn, lo, hi = OPS[op]
    if fn is gaussian_blur:
        return fn(x, op_value(op, m), sign, v_max=m_max * (hi - lo) + lo)
    return fn(x, op_value(op, m), sign).clamp(0.0, 1.0)


# --- a batch's levels: draws, grouping by op, application ---------------------------------
@dataclass
class Plan:
    """The CUDA operations of one batch. ``rows`` (float, for the batch's one host-to-device
    copy): magnitudes (1, B), then per step k the signs (K, B) and an order grouping the
    images by their k-th op (K, B); ``counts`` (K, NUM_OPS + 1) on the host, so the device
    slices groups without reading anything back. Op NUM_OPS is "none" (level <= k)."""
    rows: list
    counts: np.ndarray
    m_max: float


def plan(levels: np.ndarray, curriculum: CurriculumConfig, generator: torch.Generator,
         force: bool = False) -> Plan:
    """Draw the level-independent randomness of a batch (the aug_prob coin, max_level ops
    uniform with replacement, max_level signs: always the same count) and plan its ops."""
    levels = np.asarray(levels, dtype=np.int64)
    b, max_level = len(levels), curriculum.max_level
    coin = torch.rand(b, generator=generator).numpy()
    ops = torch.randint(0, NUM_OPS, (max_level, b), generator=generator).numpy()
    sign = torch.where(torch.rand(max_level, b, generator=generator) > 0.5, -1.0, 1.0)
    if not force:
        levels = np.where(coin < curriculum.aug_prob, levels, 0)
    steps = int(levels.max(initial=0))
    chosen = np.where(np.arange(steps)[:, None] < levels[None, :], ops[:steps], NUM_OPS)
    order = np.argsort(chosen, axis=1, kind="stable")
    counts = np.stack([np.bincount(c, minlength=NUM_OPS + 1) for c in chosen]) \
        if steps else np.zeros((0, NUM_OPS + 1), dtype=np.int64)
    m = torch.from_numpy(levels / float(curriculum.max_d)).float()
    rows = [m, *sign[:steps].unbind(0), *torch.from_numpy(order).float().unbind(0)]
    return Plan(rows, counts, float(m.max()) if b else 0.0)


def apply_plan(x: Tensor, plan: Plan, rows: Tensor) -> Tensor:
    """Apply a planned batch's ops on the device; ``rows`` are ``plan.rows`` there."""
    steps = len(plan.counts)
    m, signs, orders = rows[0], rows[1:1 + steps], rows[1 + steps:1 + 2 * steps].long()
    for k in range(steps):
        order = orders[k]
        xs, ms, ss = x[order], m[order], signs[k][order]
        parts, start = [], 0
        for op, n in enumerate(plan.counts[k].tolist()):
            if n:
                part = slice(start, start + n)
                parts.append(xs[part] if op == NUM_OPS else
                             apply_op(op, xs[part], ms[part], ss[part], plan.m_max))
                start += n
        out = torch.empty_like(x)
        out[order] = torch.cat(parts)
        x = out
    return x
