"""Hyperparameter resolution, bad input, and the small pieces of the PPO loop, by hand."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from scopeloss import devices
from scopeloss.overrides import parse_set
from scopeloss.rl import config
from scopeloss.rl.bookkeeping import EpisodeTracker, ReturnNormalizer, SignReward
from scopeloss.rl.networks import ImpalaCNN, MLP
from scopeloss.rl.rollout import compute_gae
from scopeloss.rl.train import main


def test_defaults_follow_paper_and_cleanrl():
    atari = config.resolve("Breakout", "scope").to_json()
    assert atari["env"] == {"suite": "atari", "game": "breakout", "repeat_action_probability": 0.25,
                            "frameskip": 4, "noop_max": 30, "episodic_life": False,
                            "max_episode_steps": 27000}
    p = atari["ppo"]
    assert (p["lr"], p["gamma"], p["gae_lambda"], p["vf_coef"]) == (1e-4, 0.999, 0.95, 0.5)
    assert (p["num_envs"], p["num_steps"], p["update_epochs"], p["num_minibatches"],
            p["clip_coef"], p["total_steps"]) == (8, 128, 4, 4, 0.1, 10_000_000)
    # Atari: lr annealed (CleanRL), value loss not clipped (Andrychowicz et al. 2021).
    assert p["anneal_lr"] is True and p["clip_vloss"] is False
    assert atari["loss"]["alpha"] == 0.01
    sp = config.resolve("StarPilot", "focal").to_json()
    assert sp["env"]["distribution_mode"] == "hard" and sp["env"]["num_levels"] == 500
    assert sp["env"]["start_level"] == 0 and sp["env"]["eval_start_level"] == 500
    assert (sp["ppo"]["num_envs"], sp["ppo"]["num_steps"], sp["ppo"]["update_epochs"],
            sp["ppo"]["num_minibatches"], sp["ppo"]["clip_coef"],
            sp["ppo"]["total_steps"]) == (64, 256, 3, 8, 0.2, 25_000_000)
    assert sp["ppo"]["lr"] == 1e-4 and sp["loss"]["alpha"] == 2.0
    assert sp["ppo"]["anneal_lr"] is False  # CleanRL ppo_procgen
    assert config.resolve("CartPole-v1", "policy").ppo.clip_vloss is True  # CleanRL ppo.py
    assert config.resolve("MontezumaRevenge", "policy").env.game == "montezuma_revenge"
    assert config.resolve("CartPole-v1", "policy").to_json()["env"] == {"suite": "gym", "game": "CartPole-v1"}


def test_overrides_and_full_spec_from_workflow():
    cell = config.resolve("Pong", "scope", {"ppo": {"total_steps": 1024, "lr": 3}, "loss": {"alpha": 0.5}})
    assert cell.ppo.total_steps == 1024 and cell.ppo.lr == 3.0
    assert isinstance(cell.ppo.lr, float) and cell.loss.params == {"alpha": 0.5}
    # A name outside the table is fine when the caller gives the whole env spec.
    cell = config.resolve("MyPong", "policy", {"env": {"suite": "atari", "game": "pong"}})
    assert cell.env.game == "pong" and cell.ppo.num_envs == 8
    assert parse_set(["ppo.lr=3e-4", "env.episodic_life=true", "env.game=pong"]) == {
        "ppo": {"lr": 3e-4}, "env": {"episodic_life": True, "game": "pong"}}


@pytest.mark.parametrize("env,loss,overrides,message", [
    ("Pacman", "scope", None, "unknown env 'Pacman'; allowed: Pong, Breakout"),
    ("Pong", "entropy", None, "unknown PPO policy loss 'entropy'; registered: policy, policy_entropy, scope, focal"),
    ("Pong", "scope", {"ppo": {"total_steps": 0}}, "ppo.total_steps must be a positive integer, got 0"),
    ("Pong", "scope", {"ppo": {"total_steps": -5}}, "ppo.total_steps must be a positive integer"),
    ("Pong", "scope", {"ppo": {"total_steps": 1001}}, "a multiple of ppo.num_envs (8)"),
    ("Pong", "scope", {"ppo": {"learning_rate": 1}}, "unknown key ppo.learning_rate; allowed: total_steps"),
    ("Pong", "scope", {"ppo": {"lr": "fast"}}, "ppo.lr must be a finite number > 0, got 'fast'"),
    ("Pong", "scope", {"ppo": {"anneal_lr": 1}}, "ppo.anneal_lr must be true or false"),
    ("Pong", "scope", {"optim": {}}, "unknown section 'optim'; allowed: env, ppo, loss"),
    ("Pong", "scope", {"env": {"num_levels": 3}}, "unknown key env.num_levels; allowed: game, repeat_action_probability"),
    ("Pong", "scope", {"env": {"game": "pacman2"}}, "env.game must be an installed ALE ROM id"),
    ("StarPilot", "scope", {"env": {"distribution_mode": "medium"}}, "env.distribution_mode must be one of"),
    ("Pong", "scope", {"ppo": {"device": "cpu"}}, "ppo.device is a run setting now"),
    ("Pong", "scope", {"ppo": {"checkpoint_every": 5}}, "pass it as run.checkpoint_every in --run"),
    ("Pong", "scope", {"ppo": {"lr": float("inf")}}, "ppo.lr must be a finite number > 0, got inf"),
    ("Pong", "scope", {"ppo": {"gamma": float("nan")}}, "ppo.gamma must be a finite number"),
    ("Pong", "scope", {"ppo": 3}, "section 'ppo' must be a mapping, got 3"),
    ("Pong", "scope", {"run": {"device": "cpu"}}, "'run' holds run settings"),
    ("Breakout", "scope", {"env": {"episodic_life": True}}, "env.episodic_life must be false"),
])
def test_bad_hyperparameters_are_named(env, loss, overrides, message):
    with pytest.raises(ValueError) as info:
        config.resolve(env, loss, overrides)
    assert message in str(info.value)


def test_unknown_key_lists_allowed_ones():
    with pytest.raises(ValueError, match="allowed: total_steps, num_envs, num_steps"):
        config.resolve("Pong", "scope", {"ppo": {"steps": 1}})


@pytest.mark.parametrize("args,message", [
    (["--env", "Pacman", "--loss", "scope"], "unknown env 'Pacman'"),
    (["--env", "CartPole-v1", "--loss", "ce"], "unknown PPO policy loss 'ce'"),
    (["--env", "CartPole-v1", "--loss", "scope", "--set", "ppo.total_steps=0"],
     "ppo.total_steps must be a positive integer"),
    (["--env", "CartPole-v1", "--loss", "scope", "--hparams", '{"ppo": {"total_steps": -4}}'],
     "ppo.total_steps must be a positive integer"),
    (["--env", "CartPole-v1", "--loss", "scope", "--hparams", "[1]"], "must be a JSON object"),
    (["--env", "CartPole-v1", "--loss", "scope", "--set", "ppo.lr=inf"],
     "ppo.lr must be a finite number > 0, got 'inf'"),
    (["--env", "CartPole-v1", "--loss", "scope", "--hparams", '{"ppo": [1]}', "--set", "ppo.lr=1"],
     "--hparams: section 'ppo' must be a mapping, got [1]"),
    (["--env", "CartPole-v1", "--loss", "scope", "--set", "run.device=tpu"],
     "run.device must be one of auto, cpu, cuda, got 'tpu'"),
    (["--env", "CartPole-v1", "--loss", "scope", "--run", '{"torch_threads": 0}'],
     "run.torch_threads must be null or a positive integer, got 0"),
    (["--env", "CartPole-v1", "--loss", "scope", "--run", '{"env_threads": "many"}'],
     "run.env_threads must be null or a positive integer, got 'many'"),
    (["--env", "CartPole-v1", "--loss", "scope", "--run", '{"checkpoint_every": -1}'],
     "run.checkpoint_every must be null or a positive integer"),
    (["--env", "CartPole-v1", "--loss", "scope", "--run", '{"tensorboard": "yes"}'],
     "run.tensorboard must be true or false"),
    (["--env", "CartPole-v1", "--loss", "scope", "--run", '{"gpus": 1}'],
     "unknown key run.gpus; allowed: device, compile"),
    (["--env", "CartPole-v1", "--loss", "scope", "--run", "[1]"], "--run must be a JSON object"),
    (["--env", "CartPole-v1", "--loss", "scope", "--set", "ppo.device=cpu"],
     "ppo.device is a run setting now"),
    pytest.param(["--env", "CartPole-v1", "--loss", "scope", "--set", "run.device=cuda"],
                 "run.device is 'cuda' but no CUDA device is available; allowed here: auto, cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_cli_rejects_bad_input_before_training(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main([*args, "--seed", "1", "--out", str(out)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing was started


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**40)])
def test_cli_rejects_seeds_outside_numpy_range(tmp_path, capsys, seed):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["--env", "CartPole-v1", "--loss", "scope", "--seed", seed, "--out", str(out)])
    assert info.value.code == 2
    assert "--seed must be an integer in 0..4294967295" in capsys.readouterr().err
    assert not out.exists()


def test_run_settings_resolve_to_the_jobs_allowance(monkeypatch):
    hp = config.resolve("StarPilot", "scope")  # 64 envs
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda _: {0, 1, 2}, raising=False)
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 16)  # thread counts are bounded by it
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run = config.resolve_run(hp)
    assert (run["torch_threads"], run["env_threads"], run["checkpoint_every"]) == (3, 3, 20)
    assert run["tensorboard"] is True and run["compile"] is False
    assert run["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert config.resolve_run(hp, run) == run  # idempotent
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert config.resolve_run(hp)["torch_threads"] == 2
    cart = config.resolve("CartPole-v1", "scope")  # 4 envs; gym runs on the cpu by default
    assert config.resolve_run(cart)["torch_threads"] == 1  # small networks: one thread
    got = config.resolve_run(cart, {"env_threads": 16, "checkpoint_every": 7})
    assert (got["env_threads"], got["checkpoint_every"], got["device"]) == (4, 7, "cpu")
    assert config.resolve_run(config.resolve("Pong", "scope"))["checkpoint_every"] == 100
    assert "device" not in cart.to_json()["ppo"] and "checkpoint_every" not in cart.to_json()["ppo"]


def test_cli_rejects_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    proc = subprocess.run([sys.executable, "-m", "scopeloss.rl.train", "--env", "CartPole-v1",
                           "--loss", "scope", "--seed", "1", "--out", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "exists and is not a directory" in proc.stderr
    assert target.read_text() == "not a directory"


def test_gae_matches_hand_computation():
    gamma, lam = 0.9, 0.5
    rewards = np.array([[1.0], [0.0], [2.0]], dtype=np.float32)
    values = np.array([[0.5], [1.0], [0.2], [3.0]], dtype=np.float32)  # last: bootstrap V(s_3)
    ends = np.array([[0.0], [1.0], [0.0]], dtype=np.float32)  # the episode ends at step 1
    adv, ret = compute_gae(rewards, values, ends, gamma, lam)
    d2 = 2.0 + 0.9 * 3.0 - 0.2  # 4.5
    d1 = 0.0 - 1.0  # terminal: no bootstrap, nothing flows back from step 2
    d0 = 1.0 + 0.9 * 1.0 - 0.5  # 1.4
    a0 = d0 + 0.9 * 0.5 * d1  # 0.95
    assert np.allclose(adv[:, 0], [a0, d1, d2]) and adv.dtype == np.float32
    assert np.allclose(ret, adv + values[:3])


def test_episode_tracker_counts_each_episode_once():
    tr = EpisodeTracker(3)
    assert tr.update(np.array([1.0, 0.0, 2.0]), np.array([False, False, False]), 3) is None
    rows = tr.update(np.array([4.0, 1.0, 0.0]), np.array([True, False, True]), 6)
    assert rows[:, :3].tolist() == [[6, 5.0, 2], [6, 2.0, 2]]
    rows = tr.update(np.array([7.0, 1.0, 0.0]), np.array([True, True, False]), 9,
                     time_limit=np.array([False, True, False]))
    assert rows.tolist() == [[9, 7.0, 1, 0, 0], [9, 2.0, 3, 0, 1]]  # the second hit the limit
    # A resume cuts the episodes in flight: flagged, and the tracker starts empty.
    tr.update(np.array([1.0, 0.0, 5.0]), np.array([False, False, False]), 12)
    state = tr.state_dict()
    again = EpisodeTracker(3)
    again.load_state_dict(state)
    assert again.cut(12).tolist() == [[12, 1.0, 1, 1, 0], [12, 0.0, 1, 1, 0], [12, 5.0, 2, 1, 0]]
    assert again.len.sum() == 0 and again.ret.sum() == 0


def test_reward_transforms():
    assert SignReward()(np.array([-3.0, 0.0, 7.0]), None).tolist() == [-1.0, 0.0, 1.0]
    norm = ReturnNormalizer(2, gamma=0.5)
    out = norm(np.array([2.0, 4.0]), np.array([False, True]))
    # returns [2, 4] -> running var with prior count 1e-4 ~ var([2, 4]) = 1
    assert math.isclose(norm.var, 1.0 + 1e-4 * (1.0 - 1.0) / 2.0001 + 9 * 1e-4 / 2.0001, rel_tol=1e-3)
    assert np.allclose(out, np.array([2.0, 4.0]) / np.sqrt(norm.var + 1e-8))
    assert norm.returns.tolist() == [2.0, 0.0]  # the finished env's return is reset


def test_networks_shapes_and_head_init():
    cnn = ImpalaCNN((4, 84, 84), 6)
    logits, value = cnn(torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8))
    assert logits.shape == (2, 6) and value.shape == (2,)
    assert cnn.features[5].in_features == 32 * 11 * 11  # 84 -> 42 -> 21 -> 11
    hwc = ImpalaCNN((64, 64, 3), 15, hwc=True)
    logits, _ = hwc(torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8))
    assert logits.shape == (3, 15) and hwc.features[5].in_features == 32 * 8 * 8
    w = cnn.actor.weight  # orthogonal rows scaled by 0.01 -> near-uniform initial policy
    assert torch.allclose(w @ w.T, 1e-4 * torch.eye(6), atol=1e-7)
    assert torch.allclose(cnn.critic.bias, torch.zeros(1))
    mlp = MLP((4,), 2)
    logits, value = mlp(torch.zeros(5, 4))
    assert logits.shape == (5, 2) and value.shape == (5,)


def test_inverse_cdf_sampling_draws_each_action_with_its_probability():
    from scopeloss.rl.rollout import sample

    torch.manual_seed(0)
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.0, 0.0, 0.0, 1.0]])
    draws = torch.stack([sample(probs.log().expand(2, 4)) for _ in range(20000)])
    freq = torch.stack([(draws[:, 0] == k).float().mean() for k in range(4)])
    assert torch.allclose(freq, probs[0], atol=0.01) and freq[3] == 0  # never a 0-prob action
    assert (draws[:, 1] == 3).all()
    # a cumulative sum that rounds below the draw still gives a valid action
    assert sample(torch.full((1, 6), -1.7917595)).item() in range(6)


def test_policy_loss_with_given_log_probs_equals_the_loss_that_computes_them():
    from scopeloss.losses import ppo_policy_loss

    torch.manual_seed(1)
    logits = torch.randn(32, 6)
    args = (logits, torch.randint(0, 6, (32,)), torch.randn(32) - 1.8, torch.randn(32))
    for name in ("policy", "policy_entropy", "scope", "focal"):
        a = ppo_policy_loss(name, *args, clip_coef=0.1)
        b = ppo_policy_loss(name, *args, clip_coef=0.1,
                            log_probs=torch.log_softmax(logits, dim=-1))
        assert torch.equal(a, b), name
