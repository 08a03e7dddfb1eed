"""CUDA's operations against their authors' definitions (CUDA_LTR: cifar/aug/cuda.py, which
calls PIL): each op's pixels against PIL's, each value against min + l / 30 * (max - min),
l ops per image uniform with replacement over the 22, and the batched plan against the
same ops applied image by image."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from scopeloss.classify import augment as A
from scopeloss.classify import config as C
from scopeloss.classify import curriculum_ops as O
from scopeloss.params import AugmentationConfig, CurriculumConfig

AUTHORS_OPS = ["Flip", "Mirror", "EdgeEnhance", "Detail", "Smooth", "AutoContrast", "Equalize",
               "Invert", "GaussianBlur", "ResizeCrop", "Rotate", "Posterize", "Solarize",
               "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY",
               "TranslateXabs", "TranslateYabs"]
AUTHORS_RANGES = {"GaussianBlur": (0, 2), "ResizeCrop": (1, 1.5), "Rotate": (0, 30),
                  "Posterize": (0, 4), "Solarize": (0, 256), "SolarizeAdd": (0, 110),
                  "Color": (0.1, 1.9), "Contrast": (0.1, 1.9), "Brightness": (0.1, 1.9),
                  "Sharpness": (0.1, 1.9), "ShearX": (0, 0.3), "ShearY": (0, 0.3),
                  "TranslateXabs": (0, 100), "TranslateYabs": (0, 100)}


def pil_op(name: str, im: Image.Image, v: float, sign: float) -> Image.Image:
    """The op as PIL computes it at value v (sign: the authors' random.random() > 0.5)."""
    affine = {"ShearX": (1, v * sign, 0, 0, 1, 0), "ShearY": (1, 0, 0, v * sign, 1, 0),
              "TranslateXabs": (1, 0, v * sign, 0, 1, 0),
              "TranslateYabs": (1, 0, 0, 0, 1, v * sign)}
    if name in affine:
        return im.transform(im.size, Image.AFFINE, affine[name])
    if name == "ResizeCrop":
        w, h = im.size
        big = im.resize((int(w * v), int(h * v)), Image.LANCZOS)
        left, top = int(w * v) // 2 - w // 2, int(h * v) // 2 - h // 2
        return big.crop((left, top, left + w, top + h))
    if name == "SolarizeAdd":
        a = np.clip(np.asarray(im).astype(np.int64) + v, 0, 255).astype(np.uint8)
        return ImageOps.solarize(Image.fromarray(a), 128)
    return {
        "Flip": lambda: ImageOps.flip(im), "Mirror": lambda: ImageOps.mirror(im),
        "EdgeEnhance": lambda: im.filter(ImageFilter.EDGE_ENHANCE),
        "Detail": lambda: im.filter(ImageFilter.DETAIL),
        "Smooth": lambda: im.filter(ImageFilter.SMOOTH),
        "AutoContrast": lambda: ImageOps.autocontrast(im),
        "Equalize": lambda: ImageOps.equalize(im), "Invert": lambda: ImageOps.invert(im),
        "GaussianBlur": lambda: im.filter(ImageFilter.GaussianBlur(v)),
        "Rotate": lambda: im.rotate(v * sign),
        "Posterize": lambda: ImageOps.posterize(im, max(1, int(v))),
        "Solarize": lambda: ImageOps.solarize(im, v),
        "Color": lambda: ImageEnhance.Color(im).enhance(v),
        "Contrast": lambda: ImageEnhance.Contrast(im).enhance(v),
        "Brightness": lambda: ImageEnhance.Brightness(im).enhance(v),
        "Sharpness": lambda: ImageEnhance.Sharpness(im).enhance(v),
    }[name]()


def test_the_authors_op_set_and_values():
    assert [name for name, *_ in O.OPS] == AUTHORS_OPS and O.NUM_OPS == 22
    for op, (name, _, lo, hi) in enumerate(O.OPS):
        assert (lo, hi) == AUTHORS_RANGES.get(name, (0, 1)), name
        for level in (0, 1, 5, 10):  # value = min + (level / max_d) * (max - min), max_d 30
            got = O.op_value(op, torch.tensor([level / 30])).item()
            assert got == pytest.approx(lo + level / 30 * (hi - lo), rel=1e-6), (name, level)
    color, rotate = AUTHORS_OPS.index("Color"), AUTHORS_OPS.index("Rotate")
    assert O.op_value(color, torch.tensor([10 / 30])).item() == pytest.approx(0.7)  # 0.1 + 1.8/3
    assert O.op_value(rotate, torch.tensor([3 / 30])).item() == pytest.approx(3.0)


@pytest.mark.parametrize("op", range(22), ids=AUTHORS_OPS)
def test_each_op_computes_what_pil_computes(op):
    name = AUTHORS_OPS[op]
    rng = np.random.default_rng(op)
    img = np.array(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
                     .resize((32, 32), Image.BICUBIC))  # 32 px: the authors' CIFAR size
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    lo, hi = AUTHORS_RANGES.get(name, (0, 1))
    for m in (0.1, 1 / 3, 0.7):
        for sign in (1.0, -1.0):
            ref = np.asarray(pil_op(name, Image.fromarray(img), lo + m * (hi - lo), sign), float)
            ours = O.apply_op(op, x, torch.tensor([m]), torch.tensor([sign]), m_max=m)
            diff = np.abs((ours[0].permute(1, 2, 0).numpy() * 255).round() - ref)
            if name == "GaussianBlur":  # exact Gaussian vs PIL's box-blur approximation
                assert diff.mean() < 1.0 and diff.max() <= 6, (m, diff.mean(), diff.max())
            elif name == "ResizeCrop":  # bilinear sampling vs PIL's Lanczos resize
                assert diff.mean() < 3.0, (m, diff.mean())
            else:  # PIL's own uint8 arithmetic, up to one grey level of rounding
                assert diff.max() <= 1, (name, m, sign, diff.max())


def test_level_l_draws_l_ops_uniformly_with_replacement():
    n, cuda = 22_000, CurriculumConfig.from_mapping({**C.CUDA, "enabled": True}, "cuda")
    for level in (0, 1, 4, 10):
        plan = O.plan(np.full(n, level), cuda, torch.Generator().manual_seed(level), force=True)
        assert plan.counts.shape == (level, 23) and (plan.counts[:, 22] == 0).all()
        assert plan.m_max == pytest.approx(level / 30)
        if level:  # each of the 22 ops drawn 1/22 of the time at every step
            assert plan.counts[:, :22].sum(1).tolist() == [n] * level
            assert np.abs(plan.counts[:, :22] / n - 1 / 22).max() < 0.012
    # Not forced: an aug_prob share of the images (0.5) use their class's level, the rest 0
    plan = O.plan(np.full(n, 3), cuda, torch.Generator().manual_seed(9))
    assert plan.counts[:, 22].tolist() == [plan.counts[0, 22]] * 3
    assert plan.counts[0, 22] / n == pytest.approx(0.5, abs=0.02)
    # mixed levels: step k holds exactly the images whose level exceeds k
    levels = np.array([0, 1, 2, 3, 3, 1])
    plan = O.plan(levels, cuda, torch.Generator().manual_seed(2), force=True)
    assert [int(c[:22].sum()) for c in plan.counts] == [5, 3, 2]


def test_planned_batch_equals_the_ops_one_image_at_a_time():
    """The grouped, batched application gives what applying each image's drawn ops in their
    order, one image at a time, gives (ops, order, magnitudes and signs per image)."""
    cuda = CurriculumConfig.from_mapping({**C.CUDA, "enabled": True}, "cuda")
    levels = np.array([0, 1, 2, 5, 10, 3, 7, 10])
    x = torch.rand(8, 3, 16, 16)
    gen = torch.Generator().manual_seed(4)
    state = gen.get_state()
    plan = O.plan(levels, cuda, gen, force=True)
    got = O.apply_plan(x, plan, torch.stack(plan.rows))
    gen.set_state(state)  # the same draws, read one by one
    torch.rand(8, generator=gen)
    ops = torch.randint(0, 22, (10, 8), generator=gen)
    signs = torch.where(torch.rand(10, 8, generator=gen) > 0.5, -1.0, 1.0)
    for i, level in enumerate(levels):
        xi = x[i:i + 1]
        for k in range(level):
            xi = O.apply_op(int(ops[k, i]), xi, torch.tensor([int(level) / 30]), signs[k, i:i + 1],
                            plan.m_max)
        torch.testing.assert_close(got[i:i + 1], xi, atol=1e-5, rtol=0)


def test_level_zero_changes_nothing_and_levels_change_images():
    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    cfg = AugmentationConfig.from_mapping({**C.AUGMENTATION, "crop_padding": 0}, "augmentation")
    cuda = CurriculumConfig.from_mapping({**C.CUDA, "enabled": True}, "cuda")
    plain = A.augment_batch(x, 16, cfg, torch.Generator().manual_seed(5))
    zero = A.augment_batch(x, 16, cfg, torch.Generator().manual_seed(5),
                           levels=np.zeros(64, dtype=np.int64), curriculum=cuda)
    assert torch.equal(plain, zero)  # CUDA's draws come after Table 5's; level 0: no op
    ten = A.augment_batch(x, 16, cfg, torch.Generator().manual_seed(5),
                          levels=np.full(64, 10), curriculum=cuda, force=True)
    assert (ten - plain).abs().flatten(1).amax(1).min() > 0  # every image changed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_planned_batch_on_the_gpu_equals_the_cpu():
    """benchmarks/gpu_checks.sh runs this file on the device: the same plan and images give
    the same augmented batch on CUDA as on the CPU (floating-point noise aside)."""
    cuda = CurriculumConfig.from_mapping({**C.CUDA, "enabled": True}, "cuda")
    levels = np.arange(64) % 11
    x = torch.rand(64, 3, 32, 32)
    plan = O.plan(levels, cuda, torch.Generator().manual_seed(7), force=True)
    rows = torch.stack(plan.rows)
    cpu = O.apply_plan(x, plan, rows)
    gpu = O.apply_plan(x.cuda(), plan, rows.cuda()).cpu()
    # uint8 look-up ops can flip by one grey level, and a nearest-pixel coordinate on an
    # exact boundary can round the other way (FMA), where float rounding differs: rare
    diff = (gpu - cpu).abs()
    assert (diff > 1.5 / 255).float().mean().item() < 1e-3 and diff.mean().item() < 1e-3
