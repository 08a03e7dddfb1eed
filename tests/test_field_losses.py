"""The long-tail field's losses (LDAM-DRW, logit adjustment in both forms, class-balanced)
against values computed here with numpy from the papers' formulas, and gradcheck."""

import numpy as np
import pytest
import torch

from scopeloss import registry
from scopeloss.losses import BoundLoss, supervised_loss

COUNTS = np.array([500.0, 100.0, 20.0, 4.0])
FIELD = ("ldam_drw", "logit_adjusted", "la_posthoc", "class_balanced")


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(8, 4, generator=g, dtype=torch.float64)
    targets = torch.tensor([0, 1, 2, 3, 3, 0, 2, 1])
    return logits, targets


def _log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _cb_weights(beta):
    w = (1 - beta) / (1 - beta ** COUNTS)
    return w / w.sum() * len(COUNTS)


def _call(name, logits, targets, **kw):
    return supervised_loss(name, logits, targets, class_counts=torch.tensor(COUNTS), **kw).item()


def test_ldam_drw_margins_scale_and_deferred_weights(batch):
    logits, t = batch
    x, y = logits.numpy(), t.numpy()
    m = COUNTS ** -0.25
    m = m * 0.5 / m.max()  # the rarest class gets the largest margin, 0.5
    z = x.copy()
    z[np.arange(len(y)), y] -= m[y]
    nll = -_log_softmax(30.0 * z)[np.arange(len(y)), y]
    assert _call("ldam_drw", logits, t, progress=0.5) == pytest.approx(nll.mean())
    w = _cb_weights(0.9999)[y]  # from drw_start (0.8 of the run) on
    assert _call("ldam_drw", logits, t, progress=0.8) == pytest.approx((w * nll).sum() / w.sum())
    assert _call("ldam_drw", logits, t, progress=0.0, scale=1.0, max_margin=0.0) == pytest.approx(
        (-_log_softmax(x)[np.arange(len(y)), y]).mean())  # no margin, no scale: cross entropy


def test_logit_adjusted_loss_and_post_hoc_prediction(batch):
    logits, t = batch
    x, y = logits.numpy(), t.numpy()
    prior = np.log(COUNTS / COUNTS.sum())
    for tau in (1.0, 0.5):
        want = -_log_softmax(x + tau * prior)[np.arange(len(y)), y].mean()
        assert _call("logit_adjusted", logits, t, tau=tau) == pytest.approx(want)
    # la_posthoc trains with plain cross entropy and predicts from logits - tau log prior
    ce = -_log_softmax(x)[np.arange(len(y)), y].mean()
    assert _call("la_posthoc", logits, t) == pytest.approx(ce)
    bound = BoundLoss("supervised", "la_posthoc", {"tau": 1.0})
    bound.set(class_counts=torch.tensor(COUNTS))
    adjusted = bound.eval_logits(logits).numpy()
    np.testing.assert_allclose(adjusted, _log_softmax(x) - prior)
    assert (adjusted.argmax(1) != x.argmax(1)).any()  # rare classes win where it matters
    assert BoundLoss("supervised", "ce").eval_logits(logits) is logits


def test_class_balanced_effective_number_weights_ce_and_focal(batch):
    logits, t = batch
    x, y = logits.numpy(), t.numpy()
    log_pi = _log_softmax(x)[np.arange(len(y)), y]
    for beta in (0.9999, 0.99, 0.0):
        w = _cb_weights(beta)[y]
        assert _call("class_balanced", logits, t, beta=beta) == pytest.approx(
            (w * -log_pi).sum() / w.sum())
        focal = -(1 - np.exp(log_pi)) ** 2 * log_pi
        assert _call("class_balanced", logits, t, beta=beta, gamma=2.0) == pytest.approx(
            (w * focal).sum() / w.sum())
    assert _cb_weights(0.0) == pytest.approx(np.ones(4))  # beta 0: no re-weighting


@pytest.mark.parametrize("name", FIELD)
@pytest.mark.parametrize("progress", [0.1, 0.9])
def test_field_losses_gradcheck(name, progress, batch):
    logits, t = batch
    logits = logits.clone().requires_grad_(True)
    counts = torch.tensor(COUNTS)
    assert torch.autograd.gradcheck(
        lambda z: supervised_loss(name, z, t, class_counts=counts, progress=progress,
                                  scale=2.0) if name == "ldam_drw" else
        supervised_loss(name, z, t, class_counts=counts), (logits,))


def test_field_losses_stay_out_of_re_sampling_experiments():
    # each re-weights by (or adjusts with) the natural counts: under class-balanced
    # re-sampling it would correct twice (grid.double_correction reads needs_counts)
    for name in FIELD:
        loss = registry.get("supervised", name)
        assert loss.needs_counts and "class_counts" in loss.needs
    assert registry.get("supervised", "la_posthoc").eval_logits is not None
    assert registry.get("supervised", "ldam_drw").needs == ("class_counts", "progress")
