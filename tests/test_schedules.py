"""The learning-rate schedules against their formulas, step by step."""

import math

import pytest
import torch

from scopeloss.schedules import make_schedule, schedule_factor


def test_cosine_and_linear_by_hand():
    assert schedule_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert schedule_factor("cosine", 100, 100) == pytest.approx(0.0)
    assert schedule_factor("linear", 25, 100) == pytest.approx(0.75)
    assert schedule_factor("constant", 7, 100) == 1.0


def test_warmup_step_is_cao_et_al_at_200_epochs():
    # 200 epochs of 10 steps: warm-up over epochs 1-5, x0.01 from epoch 161, x1e-4 from 181
    total, per_epoch = 2000, 10
    lr = [schedule_factor("warmup_step", k, total) for k in range(total)]
    assert lr[0] == pytest.approx(1 / 50) and lr[49] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(lr[:49], lr[1:50]))  # linear warm-up
    assert set(lr[50:160 * per_epoch]) == {1.0}
    assert set(lr[160 * per_epoch:180 * per_epoch]) == {0.01}
    assert set(lr[180 * per_epoch:]) == {1e-4}


def test_make_schedule_steps_the_optimizer_and_refuses_unknown_kinds():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_schedule(opt, "warmup_step", 400)
    seen = []
    for _ in range(400):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(0.01) and seen[10] == pytest.approx(0.1)
    assert seen[-1] == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="unknown schedule 'step'; allowed: constant, linear, "
                       "cosine, warmup_step"):
        make_schedule(opt, "step", 10)
    assert math.isfinite(schedule_factor("warmup_step", 0, 1))
