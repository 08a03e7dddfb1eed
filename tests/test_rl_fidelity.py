"""Issue 11's RL fidelity items, each shown by a test that fails on the code before them:
float32 heads under bf16 autocast, disjoint env seeds, env threads from the job, no
per-minibatch host syncs, and torch.compile on static shapes only."""

import collections
import sys

import pandas as pd
import pytest
import torch

from scopeloss import devices
from scopeloss.rl import envs, ppo
from scopeloss.rl.envs import base as envs_base
from scopeloss.rl.config import resolve
from scopeloss.rl.networks import MLP, ImpalaCNN

SMALL = {"num_envs": 4, "num_steps": 32, "update_epochs": 1, "num_minibatches": 2}
RUN = {"torch_threads": 1, "device": "cpu"}


def quiet(_):
    pass


@pytest.fixture
def cpu_bf16(monkeypatch):
    # The GPU's bf16 autocast, exercised on the CPU (the tests let autocast act on "cpu").
    monkeypatch.setattr(devices, "BF16_AUTOCAST_DEVICES", {"cuda", "cpu"})


def test_heads_run_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    cnn = ImpalaCNN((64, 64, 3), 15, hwc=True)
    obs = torch.randint(0, 256, (6, 64, 64, 3), dtype=torch.uint8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, value = cnn(obs)
        mlp_logits, mlp_value = MLP((4,), 2)(torch.randn(5, 4))
    assert logits.dtype == value.dtype == torch.float32
    assert mlp_logits.dtype == mlp_value.dtype == torch.float32
    # Only the convolutions are rounded to bf16: values and log-probs are within float error
    # of a float32 forward scaled up to an Atari-size value (100), not bf16's 0.25-2 steps.
    with torch.no_grad():
        cnn.critic.weight.mul_(100.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            v_bf16 = cnn(obs)[1]
        v_fp32 = cnn(obs)[1]
    assert v_bf16.dtype == torch.float32
    assert (v_bf16 - v_fp32).abs().max() < 0.5


def test_first_minibatch_ratio_is_one_under_bf16(tmp_path, cpu_bf16):
    # One epoch, one minibatch: update 1's approx_kl and clipfrac are those of the first
    # minibatch of epoch 0, where the policy has not moved: ratio 1 up to float error.
    hp = resolve("Breakout", "scope", {"ppo": {**SMALL, "total_steps": 128, "num_minibatches": 1},
                                       "env": {"max_episode_steps": 40}})
    ppo.train(hp, seed=3, out=tmp_path, run=RUN, log=quiet)
    first = pd.read_csv(tmp_path / "updates.csv").iloc[0]
    assert abs(first.approx_kl) < 1e-7 and first.clipfrac == 0.0


def test_env_seeds_do_not_overlap_across_run_seeds(tmp_path):
    # Training envs of runs 1, 2, 3 (seeds base .. base + num_envs - 1) share no seed; the
    # eval streams (key (1, update)) are their own too.
    ranges = []
    for seed in (1, 2, 3):
        hp = resolve("CartPole-v1", "policy", {"ppo": {**SMALL, "num_envs": 8, "total_steps": 256}})
        summary = ppo.train(hp, seed=seed,
                            out=tmp_path / str(seed), run=RUN, log=quiet)
        base = summary["env_spec"]["env_seed"]
        ranges.append(set(range(base, base + 8)))
        assert base == envs.derive_seed(seed, 0, 1)
    assert not (ranges[0] & ranges[1]) and not (ranges[0] & ranges[2]) and not (ranges[1] & ranges[2])
    evals = {envs.derive_seed(s, 1, u) for s in (1, 2, 3) for u in (50, 100)}
    assert len(evals) == 6 and not evals & set().union(*ranges)
    assert all(0 <= envs.derive_seed(s, 0, 1) < 2**31 for s in (0, 2**32 - 1))


def test_env_threads_follow_the_jobs_allowance(monkeypatch):
    cfg = resolve("Breakout", "scope").env
    env = envs.make_env(cfg, 4, 0, 1)
    assert env.kwargs["num_threads"] == 1
    env.close()
    monkeypatch.setattr(envs_base.os, "sched_getaffinity", lambda _: {0}, raising=False)
    monkeypatch.setattr(envs_base.os, "cpu_count", lambda: 64)
    env = envs.make_env(cfg, 4, 0)
    assert env.kwargs["num_threads"] == 1  # one core granted, not os.cpu_count()
    env.close()


def test_no_per_minibatch_host_syncs(tmp_path, monkeypatch):
    # CPU stand-in for host syncs: Tensor.item/.tolist/int()/float()/bool() called from our
    # code during a run with 4 epochs x 4 minibatches per update. Before: 2 per minibatch
    # in losses._check_index (34 per update); now a fixed few per update.
    counts = collections.Counter()
    for name in ("item", "tolist", "__int__", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _name=name, _original=original, **k):
            if "scopeloss" in sys._getframe(1).f_code.co_filename:
                counts[_name] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    hp = resolve("CartPole-v1", "scope", {"ppo": {"total_steps": 2048, "num_envs": 4,
                                                  "num_steps": 128, "update_epochs": 4,
                                                  "num_minibatches": 4}})
    summary = ppo.train(hp, seed=1, out=tmp_path,
                        run=RUN, log=quiet)
    assert summary["updates"] == 4
    assert sum(counts.values()) / 4 <= 3, counts


def test_compile_sees_only_static_shapes(tmp_path, monkeypatch):
    # A counting backend stands in for inductor (dynamo's capture, guards and recompiles are
    # the same). The run has a short last rollout (other minibatch sizes). Expected: one graph
    # for the rollout batch (inference) and one for the full minibatches (training), no
    # dynamic (symbolic) shapes, no recompile after the first update.
    import torch._dynamo

    graphs = []

    def backend(gm, example_inputs):
        symbolic = any(isinstance(x, torch.SymInt) or (
            isinstance(x, torch.Tensor) and any(isinstance(d, torch.SymInt) for d in x.shape))
            for x in example_inputs)
        graphs.append(symbolic)
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real_compile(model, backend=backend,
                                                                          **kw))
    torch._dynamo.reset()
    hp = resolve("CartPole-v1", "scope", {"ppo": {**SMALL, "update_epochs": 2,
                                                  "total_steps": 4 * 32 * 3 + 4 * 8}})
    summary = ppo.train(hp, seed=1, out=tmp_path,
                        run={**RUN, "compile": True}, log=quiet)
    torch._dynamo.reset()
    assert summary["updates"] == 4
    assert graphs == [False, False], graphs
