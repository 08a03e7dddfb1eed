"""The loss library against values computed independently here (numpy / textbook forms)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scopeloss.losses import (
    PPO_LOSSES,
    SUPERVISED_LOSSES,
    ppo_policy_loss,
    supervised_loss,
)

COUNTS = torch.tensor([50.0, 10.0, 5.0, 35.0])


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64) * 2
    targets = torch.tensor([0, 1, 2, 3, 1, 0])
    return logits, targets


def _np_probs(logits):
    x = logits.detach().numpy()
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- supervised, by hand


def test_hand_computed_two_class_values():
    # logits (0, ln 3): p = (1/4, 3/4); target 1 so p_i = 3/4.
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    t = torch.tensor([1])
    lp = math.log(0.75)
    assert supervised_loss("ce", logits, t).item() == pytest.approx(-lp)
    assert supervised_loss("focal", logits, t).item() == pytest.approx(-(0.25**2) * lp)
    assert supervised_loss("scope", logits, t).item() == pytest.approx(-(1 - 0.75) * lp)
    neg_h = 0.25 * math.log(0.25) + 0.75 * lp
    assert supervised_loss("pel", logits, t, alpha=0.5).item() == pytest.approx(-lp + 0.5 * neg_h)


def test_supervised_matches_numpy(batch):
    logits, t = batch
    p = _np_probs(logits)
    pi = p[np.arange(len(t)), t.numpy()]
    neg_h = (p * np.log(p)).sum(1)
    expected = {
        "ce": np.mean(-np.log(pi)),
        "focal": np.mean(-((1 - pi) ** 2) * np.log(pi)),
        "pel": np.mean(-np.log(pi) + 8e-6 * neg_h),
        "scope": np.mean(-(1 - pi) * np.log(pi)),
    }
    for name, value in expected.items():
        assert supervised_loss(name, logits, t).item() == pytest.approx(value, rel=1e-10), name


def test_supervised_identities(batch):
    logits, t = batch
    ce = supervised_loss("ce", logits, t)
    torch.testing.assert_close(supervised_loss("scope", logits, t), supervised_loss("focal", logits, t, gamma=1.0))
    torch.testing.assert_close(supervised_loss("pel", logits, t, alpha=0.0), ce)
    torch.testing.assert_close(supervised_loss("focal", logits, t, gamma=0.0), ce)
    torch.testing.assert_close(ce, F.cross_entropy(logits, t))


def test_scope_alpha_scales_the_certainty_term(batch):
    logits, t = batch
    p = _np_probs(logits)
    pi = p[np.arange(len(t)), t.numpy()]
    value = supervised_loss("scope", logits, t, alpha=0.3).item()
    assert value == pytest.approx(np.mean(-(1 - 0.3 * pi) * np.log(pi)), rel=1e-10)


def test_weighted_ce_uses_inverse_frequency_weights(batch):
    logits, t = batch
    weights = COUNTS.double().sum() / (len(COUNTS) * COUNTS.double())  # 100 / (4 n_c)
    assert weights[1].item() == pytest.approx(2.5)
    expected = F.cross_entropy(logits, t, weight=weights)
    got = supervised_loss("weighted_ce", logits, t, class_counts=COUNTS)
    torch.testing.assert_close(got, expected)
    # By hand: weighted mean of -log p_i with w_y.
    p = _np_probs(logits)
    nll = -np.log(p[np.arange(len(t)), t.numpy()])
    w = weights.numpy()[t.numpy()]
    assert got.item() == pytest.approx((w * nll).sum() / w.sum(), rel=1e-10)


def test_balanced_softmax_adds_log_prior(batch):
    logits, t = batch
    prior = (COUNTS / COUNTS.sum()).double()
    expected = F.cross_entropy(logits + prior.log(), t)
    torch.testing.assert_close(supervised_loss("balanced_softmax", logits, t, class_counts=COUNTS), expected)
    # With a uniform prior it is plain cross entropy.
    uniform = torch.full((4,), 7.0)
    torch.testing.assert_close(
        supervised_loss("balanced_softmax", logits, t, class_counts=uniform), supervised_loss("ce", logits, t)
    )


def test_low_precision_logits_are_computed_in_float32(batch):
    logits, t = batch
    half = logits.to(torch.bfloat16)
    for name in ("ce", "focal", "pel", "scope"):
        out = supervised_loss(name, half, t)
        assert out.dtype == torch.float32
        ref = supervised_loss(name, half.double(), t)
        assert out.item() == pytest.approx(ref.item(), rel=1e-5)


# ---------------------------------------------------------------- PPO


def _ppo_batch(seed=1, n=16, a=5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, a, generator=g, dtype=torch.float64)
    actions = torch.randint(0, a, (n,), generator=g)
    old_logprob = torch.log_softmax(logits + 0.3 * torch.randn(n, a, generator=g, dtype=torch.float64), 1)
    old_logprob = old_logprob.gather(1, actions[:, None]).squeeze(1)
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    return logits, actions, old_logprob, adv


def test_policy_equals_textbook_clipped_surrogate():
    logits, actions, old, adv = _ppo_batch()
    eps = 0.2
    logp = torch.log_softmax(logits, 1).gather(1, actions[:, None]).squeeze(1)
    ratio = (logp - old).exp()
    textbook = -torch.min(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv).mean()
    got = ppo_policy_loss("policy", logits, actions, old, adv, clip_coef=eps)
    torch.testing.assert_close(got, textbook)


def test_ppo_losses_match_numpy():
    logits, actions, old, adv = _ppo_batch(seed=3)
    eps = 0.1
    p = _np_probs(logits)
    idx = np.arange(len(actions)), actions.numpy()
    pi = p[idx]
    A = adv.numpy()
    r = pi / np.exp(old.numpy())
    g = np.where(A >= 0, A * (1 + eps), A * (1 - eps))
    lclip = np.minimum(r * A, g)
    neg_h = (p * np.log(p)).sum(1)
    expected = {
        "policy": np.mean(-lclip),
        "policy_entropy": np.mean(-lclip + 0.01 * neg_h),
        "scope": np.mean(-lclip + 0.01 * pi * np.log(pi)),
        "focal": np.mean(-lclip * A + 2 * 2.0 * lclip * pi - 4.0 * pi**2 * np.log(pi)),
    }
    for name, value in expected.items():
        got = ppo_policy_loss(name, logits, actions, old, adv, clip_coef=eps).item()
        assert got == pytest.approx(value, rel=1e-10), name


def test_scope_minus_policy_is_alpha_pi_log_pi():
    logits, actions, old, adv = _ppo_batch(seed=5)
    alpha = 0.37
    diff = ppo_policy_loss("scope", logits, actions, old, adv, clip_coef=0.2, alpha=alpha) - ppo_policy_loss(
        "policy", logits, actions, old, adv, clip_coef=0.2
    )
    logp = torch.log_softmax(logits, 1).gather(1, actions[:, None]).squeeze(1)
    torch.testing.assert_close(diff, (alpha * logp.exp() * logp).mean())


def test_ppo_clipping_stops_gradient_beyond_the_trust_region():
    # A > 0 and ratio far above 1 + eps: the clipped branch is constant, no policy gradient.
    logits = torch.tensor([[3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([0])
    old = torch.tensor([math.log(0.2)], dtype=torch.float64)
    adv = torch.tensor([1.0], dtype=torch.float64)
    ppo_policy_loss("policy", logits, actions, old, adv, clip_coef=0.2).backward()
    assert torch.all(logits.grad == 0)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", SUPERVISED_LOSSES)
def test_supervised_gradcheck(name, batch):
    logits, t = batch
    logits = logits.clone().requires_grad_(True)
    # the context a loss did not declare it needs is not handed to it
    kwargs = {"class_counts": COUNTS.double(), "progress": 0.9}
    if name == "ldam_drw":
        kwargs["scale"] = 2.0  # 30 times logits of sd 2 saturates the softmax
    assert torch.autograd.gradcheck(lambda x: supervised_loss(name, x, t, **kwargs), (logits,))


@pytest.mark.parametrize("name", PPO_LOSSES)
def test_ppo_gradcheck(name):
    logits, actions, old, adv = _ppo_batch(seed=7)
    logits = logits.clone().requires_grad_(True)
    kwargs = {"action_counts": torch.bincount(actions, minlength=5)} if name == "weighted_policy" else {}
    assert torch.autograd.gradcheck(
        lambda x: ppo_policy_loss(name, x, actions, old, adv, clip_coef=0.2, **kwargs), (logits,)
    )


# ---------------------------------------------------------------- RL imbalance remedies


def test_weighted_policy_is_the_inverse_count_weighted_mean_of_eq10():
    logits, actions, old, adv = _ppo_batch(seed=11, n=40, a=3)
    eps = 0.2
    counts = torch.bincount(actions, minlength=3)
    p = _np_probs(logits)
    idx = np.arange(len(actions)), actions.numpy()
    A = adv.numpy()
    r = p[idx] / np.exp(old.numpy())
    lclip = np.minimum(r * A, np.where(A >= 0, A * (1 + eps), A * (1 - eps)))
    w = 1.0 / counts.numpy()[actions.numpy()]
    expected = (w * -lclip).sum() / w.sum()
    x = logits.clone().requires_grad_(True)
    got = ppo_policy_loss("weighted_policy", x, actions, old, adv, clip_coef=eps, action_counts=counts)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    # gradient: the weighted sum of the per-sample gradients of -L_clip
    got.backward()
    per_sample = []
    for i in range(len(actions)):
        xi = logits.clone().requires_grad_(True)
        term = ppo_policy_loss("policy", xi[i : i + 1], actions[i : i + 1], old[i : i + 1], adv[i : i + 1], clip_coef=eps)
        term.backward()
        per_sample.append(xi.grad * w[i] / w.sum())
    torch.testing.assert_close(x.grad, sum(per_sample))
    # equal counts: plain eq. 10
    torch.testing.assert_close(
        ppo_policy_loss("weighted_policy", logits, actions, old, adv, clip_coef=eps, action_counts=torch.ones(3)),
        ppo_policy_loss("policy", logits, actions, old, adv, clip_coef=eps))
    with pytest.raises(ValueError, match="needs action_counts"):
        ppo_policy_loss("weighted_policy", logits, actions, old, adv, clip_coef=eps)
    bad = counts.double()
    bad[actions[0]] = 0
    with pytest.raises(ValueError, match="positive for every action in the batch"):
        ppo_policy_loss("weighted_policy", logits, actions, old, adv, clip_coef=eps, action_counts=bad)


def test_resampled_policy_is_eq10_with_balanced_sampling():
    from scopeloss import registry

    logits, actions, old, adv = _ppo_batch(seed=2)
    torch.testing.assert_close(ppo_policy_loss("resampled_policy", logits, actions, old, adv, clip_coef=0.1),
                               ppo_policy_loss("policy", logits, actions, old, adv, clip_coef=0.1))
    assert registry.get("ppo", "resampled_policy").sampling == "action_balanced"
    assert {loss.sampling for name, loss in registry.losses("ppo").items() if name != "resampled_policy"} == {"natural"}


# ---------------------------------------------------------------- the registry


def test_every_registered_name_dispatches_to_its_own_function():
    # No fall-through: each name reaches the function registered under it, and a name not
    # registered is refused (the old if/elif chain ended in `else: # focal`).
    from scopeloss import registry

    for kind in registry.KINDS:
        for loss in registry.losses(kind).values():
            assert callable(loss.function) and loss.kind == kind and loss.label
    logits, actions, old, adv = _ppo_batch()
    seen = []
    for kind, call in (("ppo", lambda n: ppo_policy_loss(n, logits, actions, old, adv, clip_coef=0.2,
                                                          action_counts=torch.ones(5))),
                       ("supervised", lambda n: supervised_loss(n, logits[:, :4], actions % 4,
                                                                class_counts=COUNTS,
                                                                progress=0.5))):
        for name, loss in registry.losses(kind).items():
            original = loss.function
            registry._LOSSES[kind][name] = __import__("dataclasses").replace(
                loss, function=lambda *a, _n=name, **k: seen.append(_n) or torch.zeros(()))
            try:
                call(name)
            finally:
                registry._LOSSES[kind][name] = loss
            assert seen[-1] == name and loss.function is original
    with pytest.raises(ValueError, match="unknown PPO policy loss 'nope'; registered: policy, "):
        ppo_policy_loss("nope", logits, actions, old, adv, clip_coef=0.2)


def test_a_parameter_the_loss_does_not_take_is_refused():
    logits, actions, old, adv = _ppo_batch()
    with pytest.raises(ValueError, match="'policy' takes no parameter 'beta'"):
        ppo_policy_loss("policy", logits, actions, old, adv, clip_coef=0.2, beta=1.0)
    # alpha=None keeps the default (and is accepted by a loss without alpha: the old API)
    ppo_policy_loss("policy", logits, actions, old, adv, clip_coef=0.2, alpha=None)


def test_registering_a_user_loss_and_its_errors():
    from scopeloss import registry
    from scopeloss.losses import register_ppo_loss, register_supervised_loss
    from scopeloss.config_keys import ConfigError

    logits, actions, old, adv = _ppo_batch()
    with registry.restored():
        @register_ppo_loss("my_pg", alpha=0.5, label="My PG")
        def my_pg(logits, actions, old_logprob, advantages, *, clip_coef, alpha):
            return alpha * logits.sum() * 0 + alpha

        assert ppo_policy_loss("my_pg", logits, actions, old, adv, clip_coef=0.2).item() == 0.5
        assert ppo_policy_loss("my_pg", logits, actions, old, adv, clip_coef=0.2, alpha=2).item() == 2
        assert registry.styles("ppo")["my_pg"]["label"] == "My PG"
        with pytest.raises(ConfigError, match="'scope' registered twice: by scopeloss.losses"):
            register_ppo_loss("scope")(my_pg)
        with pytest.raises(ConfigError, match=r"cannot be called as a PPO policy loss is, with "
                           r"\(logits, actions, old_logprob, advantages, \*, clip_coef, beta\)"):
            register_ppo_loss("bad", beta=1.0)(my_pg)
        with pytest.raises(ConfigError, match="cannot be called as a supervised loss is"):
            register_supervised_loss("bad_ce")(lambda logits: logits)
        with pytest.raises(ConfigError, match="default must be a number"):
            register_supervised_loss("bad_ce", alpha="x")
    assert "my_pg" not in registry.names("ppo")


def test_the_registry_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, scopeloss.losses, scopeloss.registry as r; r.styles('ppo'); "
            "r.check_params('ppo', 'scope', {'alpha': 0.1}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _grad_wrt_chosen_logit(name, p_i, adv=1.0, **kw):
    """d loss / d z_i for a two-action policy with p(action 0) = p_i, at ratio 1."""
    z = torch.tensor([[math.log(p_i / (1 - p_i)), 0.0]], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([0])
    old = torch.log_softmax(z.detach(), 1)[:, 0]
    ppo_policy_loss(name, z, actions, old, torch.tensor([adv], dtype=torch.float64), clip_coef=0.2, **kw).backward()
    return z.grad[0, 0].item()


def test_scope_damps_the_push_towards_certain_actions():
    # Section 4.2: with A > 0, scope's gradient pushing p_i up is smaller than plain policy
    # loss's once the agent is fairly certain, and the relative damping grows with p_i.
    # Because p_i carries gradient, d(alpha p_i log p_i)/dz_i = alpha p_i (1 - p_i)(1 + log p_i):
    # the damping starts at p_i = 1/e; below it scope pushes slightly harder than policy.
    relative_damping = []
    for p_i in (0.4, 0.6, 0.9):
        push_policy = -_grad_wrt_chosen_logit("policy", p_i)  # > 0: descent raises z_i
        push_scope = -_grad_wrt_chosen_logit("scope", p_i, alpha=0.5)
        assert push_policy == pytest.approx(1 - p_i)  # A (1 - p_i) at ratio 1
        assert push_scope < push_policy
        relative_damping.append((push_policy - push_scope) / push_policy)
        assert relative_damping[-1] == pytest.approx(0.5 * p_i * (1 + math.log(p_i)))
    assert relative_damping[0] < relative_damping[1] < relative_damping[2]
    assert -_grad_wrt_chosen_logit("scope", 0.2, alpha=0.5) > -_grad_wrt_chosen_logit("policy", 0.2)


def test_focal_increases_p_i_even_for_negative_advantage():
    # eq. 14 squares (A - alpha p_i): the weight on log p_i is positive whatever A's sign,
    # which is why focal cannot learn to avoid bad actions (the paper's Fig. 2 finding).
    assert _grad_wrt_chosen_logit("policy", 0.5, adv=-1.0) > 0  # policy lowers p_i
    assert _grad_wrt_chosen_logit("focal", 0.5, adv=-1.0) < 0  # focal raises it


# ---------------------------------------------------------------- bad input


def test_unknown_names_list_the_allowed_ones(batch):
    logits, t = batch
    with pytest.raises(ValueError, match="unknown supervised loss 'scop'.*pel, scope, focal, ce"):
        supervised_loss("scop", logits, t)
    with pytest.raises(ValueError, match="unknown PPO policy loss 'entropy'.*policy, policy_entropy, scope, focal"):
        ppo_policy_loss("entropy", *_ppo_batch(), clip_coef=0.2)


def test_shape_and_range_errors(batch):
    logits, t = batch
    with pytest.raises(ValueError, match=r"targets must have shape \(6,\)"):
        supervised_loss("ce", logits, t[:5])
    with pytest.raises(ValueError, match=r"targets must have shape"):
        supervised_loss("ce", logits, t[:, None])  # (6, 1) must not broadcast
    with pytest.raises(ValueError, match=r"logits must have shape \(B, C\)"):
        supervised_loss("ce", logits[0], t[:1])
    with pytest.raises(ValueError, match=r"out of range.*\[0, 3\].*max 4"):
        supervised_loss("ce", logits, torch.tensor([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match="out of range"):
        supervised_loss("ce", logits, torch.tensor([0, -1, 2, 3, 1, 0]))
    with pytest.raises(TypeError, match="integer"):
        supervised_loss("ce", logits, t.double())
    with pytest.raises(ValueError, match="needs class_counts"):
        supervised_loss("weighted_ce", logits, t)
    with pytest.raises(ValueError, match=r"class_counts must have shape \(4,\)"):
        supervised_loss("balanced_softmax", logits, t, class_counts=[1, 2, 3])
    with pytest.raises(ValueError, match="positive"):
        supervised_loss("weighted_ce", logits, t, class_counts=[1, 0, 3, 4])


def test_ppo_shape_errors():
    logits, actions, old, adv = _ppo_batch()
    with pytest.raises(ValueError, match=r"advantages must have shape \(16,\)"):
        ppo_policy_loss("policy", logits, actions, old, adv[:, None], clip_coef=0.2)
    with pytest.raises(ValueError, match=r"old_logprob must have shape"):
        ppo_policy_loss("policy", logits, actions, old[:3], adv, clip_coef=0.2)
    with pytest.raises(ValueError, match="actions out of range"):
        ppo_policy_loss("policy", logits, actions + 5, old, adv, clip_coef=0.2)
    with pytest.raises(ValueError, match="clip_coef must be positive"):
        ppo_policy_loss("policy", logits, actions, old, adv, clip_coef=0.0)


def test_range_check_once_where_data_enters(monkeypatch):
    # The trainer checks the actions' range once per rollout (check_index_range) and calls the
    # loss with check_range=False: no int()/item() of a tensor per minibatch (on a GPU each
    # is a host sync). Direct callers keep the check by default (test_ppo_shape_errors).
    from scopeloss.losses import check_index_range

    logits, actions, old, adv = _ppo_batch()
    with pytest.raises(ValueError, match=r"actions out of range.*\[0, 2\].*max 3"):
        check_index_range("actions", torch.tensor([0, 3]), 3)
    check_index_range("actions", torch.tensor([], dtype=torch.long), 3)
    calls = []
    for name in ("__int__", "item", "tolist", "__bool__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name,
                            lambda self, *a, _o=original, **k: calls.append(1) or _o(self, *a, **k))
    unchecked = ppo_policy_loss("scope", logits, actions, old, adv, clip_coef=0.2,
                                check_range=False)
    assert calls == []
    checked = ppo_policy_loss("scope", logits, actions, old, adv, clip_coef=0.2)
    assert len(calls) == 2 and torch.equal(unchecked, checked)
    with pytest.raises(ValueError, match=r"actions must have shape"):  # shapes always checked
        ppo_policy_loss("scope", logits, actions[:3], old, adv, clip_coef=0.2, check_range=False)
