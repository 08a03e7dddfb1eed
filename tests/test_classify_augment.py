"""Batched on-device augmentation: factor statistics, range, agreement with torchvision."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from scopeloss.classify import augment as A
from scopeloss.classify import enhance as E
from scopeloss.classify.config import AUGMENTATION
from dataclasses import replace
from scopeloss.params import AugmentationConfig


def test_factors_have_the_configured_means_and_spreads():
    gen = torch.Generator().manual_seed(0)
    cfg = AugmentationConfig.from_mapping({**AUGMENTATION, "contrast": [0.8, 0.2]}, "augmentation")
    f = A.sample_factors(200_000, cfg, gen)
    # Standard error of the mean is std / sqrt(n) <= 0.3 / 447 ~ 7e-4: 5e-3 is > 7 sigma.
    for name, (mean, std) in [("color", (1.0, 0.3)), ("contrast", (0.8, 0.2)),
                              ("brightness", (1.0, 0.1)), ("sharpness", (1.0, 0.3))]:
        assert f[name].mean().item() == pytest.approx(mean, abs=5e-3), name
        assert f[name].std().item() == pytest.approx(std, abs=5e-3), name
    # Clamped to the valid range: a wide spread gets clipped at 0, never below.
    wide = A.sample_factors(10_000, replace(cfg, color=[0.0, 1.0]), gen)["color"]
    assert wide.min().item() == 0.0 and (wide == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)


def test_batched_ops_match_torchvision_per_image():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 20, 20, generator=gen)
    factors = torch.tensor([0.0, 0.5, 0.9, 1.0, 1.3, 2.0])
    ops = [(E.adjust_brightness, TF.adjust_brightness), (E.adjust_contrast, TF.adjust_contrast),
           (E.adjust_saturation, TF.adjust_saturation), (E.adjust_sharpness, TF.adjust_sharpness)]
    for ours, theirs in ops:
        got = ours(x, factors)
        want = torch.stack([theirs(x[i], float(factors[i])) for i in range(len(x))])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=ours.__name__)
    # Factor 1 is the identity for every op.
    for ours, _ in ops:
        torch.testing.assert_close(ours(x, torch.ones(6)), x)


def test_crop_and_flip_pick_uniform_windows():
    gen = torch.Generator().manual_seed(2)
    img = torch.arange(10 * 10, dtype=torch.float32).view(1, 1, 10, 10).expand(4000, 3, 10, 10)
    out = A.random_crop_flip(img, 6, 0, 0.5, gen)
    assert out.shape == (4000, 3, 6, 6)
    top_left = out[:, 0, 0, :]
    flipped = top_left[:, 0] > top_left[:, -1]
    assert flipped.float().mean().item() == pytest.approx(0.5, abs=0.04)
    # Each output is a contiguous 6x6 window of the input (mirrored when flipped).
    unflipped = torch.where(flipped[:, None, None], out[:, 0].flip(-1), out[:, 0])
    oy, ox = (unflipped[:, 0, 0] // 10).long(), (unflipped[:, 0, 0] % 10).long()
    want = (oy[:, None, None] + torch.arange(6)[None, :, None]) * 10 + ox[:, None, None] + torch.arange(6)
    torch.testing.assert_close(unflipped, want.float())
    # Offsets are uniform over the 5 x 5 positions.
    counts = torch.bincount(oy * 5 + ox, minlength=25).float()
    assert counts.min().item() > 4000 / 25 * 0.7 and counts.max().item() < 4000 / 25 * 1.3
    # Zero padding widens the range of positions.
    padded = A.random_crop_flip(img[:200], 10, 2, 0.0, gen)
    assert (padded == 0).any() and padded.shape == (200, 3, 10, 10)


def test_augmented_batch_stays_in_range():
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (64, 3, 36, 36), dtype=torch.uint8, generator=gen)
    cfg = AugmentationConfig.from_mapping({**AUGMENTATION, "color": [1.0, 3.0], "brightness": [1.0, 3.0],
                                           "crop_padding": 4}, "augmentation")
    out = A.augment_batch(x, 32, cfg, gen)
    assert out.shape == (64, 3, 32, 32) and out.dtype == torch.float32
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    assert not torch.equal(out, A.eval_batch(x, 32))
    ev = A.eval_batch(x, 32)
    torch.testing.assert_close(ev, x[..., 2:34, 2:34].float() / 255)


def test_brightness_spread_seen_in_the_augmented_images():
    # Only brightness varies: a uniform grey image comes out as 0.5 * f, f ~ N(1, 0.1).
    gen = torch.Generator().manual_seed(4)
    cfg = AugmentationConfig.from_mapping({**AUGMENTATION, "color": [1.0, 0.0], "contrast": [1.0, 0.0], "sharpness": [1.0, 0.0],
           "flip_p": 0.0}, "augmentation")
    x = torch.full((20_000, 3, 4, 4), 128, dtype=torch.uint8)
    out = A.augment_batch(x, 4, cfg, gen)
    level = out.mean(dim=(1, 2, 3))
    base = 128 / 255
    assert (level / base).mean().item() == pytest.approx(1.0, abs=3e-3)
    assert (level / base).std().item() == pytest.approx(0.1, abs=3e-3)
    assert torch.allclose(out, level.view(-1, 1, 1, 1).expand_as(out))
