"""MinAtar suite: the batched env against the package itself, the network's layout, the
Gymnasium image layout, and learning on MinAtar Breakout (>= 5x a random policy)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from minatar import Environment

from scopeloss.rl import config
from scopeloss.rl.envs import make_env
from scopeloss.rl.envs.gym import GymBatched
from scopeloss.rl.envs.minatar import MinAtarBatched, env_seeds
from scopeloss.params import GymEnvConfig
from scopeloss.rl.networks import ImpalaCNN, MinAtarCNN, make_network
from scopeloss.rl.ppo import train

GAMES = {"MinAtarBreakout": 4, "MinAtarAsterix": 4, "MinAtarSeaquest": 10,
         "MinAtarSpaceInvaders": 6, "MinAtarFreeway": 7}


def env_cfg(name="MinAtarBreakout", **env):
    return config.resolve(name, "scope", {"env": env} if env else None).env


def test_defaults_are_minatars_own():
    hp = config.resolve("MinAtarSeaquest", "scope").to_json()
    assert hp["env"] == {"suite": "minatar", "game": "seaquest", "sticky_action_prob": 0.1,
                         "difficulty_ramping": True, "max_episode_steps": None}
    p = hp["ppo"]
    assert (p["lr"], p["gamma"], p["gae_lambda"], p["vf_coef"]) == (1e-4, 0.999, 0.95, 0.5)
    assert hp["loss"]["alpha"] == 0.01
    assert config.resolve("MinAtarFreeway", "focal").loss.params["alpha"] == 2.0


@pytest.mark.parametrize("env,message", [
    ({"game": "pong"}, "env.game must be one of breakout, asterix"),
    ({"sticky_action_prob": 1.5}, "env.sticky_action_prob must be a finite number in [0, 1]"),
    ({"max_episode_steps": 0}, "env.max_episode_steps must be null or a positive integer"),
    ({"noop_max": 3}, "unknown key env.noop_max; allowed: game, sticky_action_prob"),
    ({"difficulty_ramping": "yes"}, "env.difficulty_ramping must be true or false"),
])
def test_bad_env_settings_are_named(env, message):
    with pytest.raises(ValueError) as info:
        config.resolve("MinAtarBreakout", "scope", {"env": env})
    assert message in str(info.value)


@pytest.mark.parametrize("name", list(GAMES))
def test_shapes(name):
    env = make_env(env_cfg(name), 3, seed=1)
    assert isinstance(env, MinAtarBatched) and env.hwc and env.network == "minatar"
    obs = env.reset()
    assert env.obs_shape == (10, 10, GAMES[name])
    assert obs.shape == (3, 10, 10, GAMES[name]) and obs.dtype == np.bool_
    assert env.obs_dtype == np.bool_ and env.num_actions == 6
    obs, rew, term, trunc, final = env.step(np.zeros(3, dtype=np.int64))
    assert obs.shape == (3, 10, 10, GAMES[name]) and rew.dtype == np.float32
    assert term.shape == trunc.shape == (3,) and term.dtype == trunc.dtype == np.bool_
    assert final is None and not trunc.any()
    assert env.spec["game"] == env_cfg(name).game and env.spec["autoreset"] == "same-step"
    assert env.spec["sticky_action_prob"] == 0.1 and env.spec["num_actions"] == 6


def reference_run(game, seeds, actions):
    """The package's own Environment, one per env, reset when an episode ends."""
    envs = [Environment(game) for _ in seeds]
    for env, s in zip(envs, seeds):
        env.seed(int(s))
        env.reset()
    out = []
    for a in actions:
        rows = []
        for env, ai in zip(envs, a):
            r, done = env.act(int(ai))
            if done:
                env.reset()
            rows.append((env.state(), r, done))
        out.append(rows)
    return out


@pytest.mark.parametrize("name", ["MinAtarBreakout", "MinAtarAsterix"])
def test_same_step_autoreset_matches_the_package(name):
    n = 4
    env = make_env(env_cfg(name), n, seed=7)
    env.reset()
    actions = np.random.default_rng(0).integers(0, 6, size=(400, n))
    ref = reference_run(env_cfg(name).game, env_seeds(7, n), actions)
    ends = 0
    for a, rows in zip(actions, ref):
        obs, rew, term, trunc, final = env.step(a)
        for i, (state, r, done) in enumerate(rows):
            # On the step that ends an episode: its reward and done flag, and the next
            # episode's first observation.
            assert np.array_equal(obs[i], state) and rew[i] == r and term[i] == done
        ends += int(term.sum())
        assert not trunc.any() and final is None
    assert ends >= 5  # random play ends several episodes in 400 steps


def test_raw_returns_and_truncation():
    env = make_env(env_cfg("MinAtarBreakout", max_episode_steps=5), 2, seed=3)
    first = env.reset()
    for _t in range(5):
        obs, rew, term, trunc, final = env.step(np.zeros(2, dtype=np.int64))  # 'no-op'
    # A do-nothing paddle: no episode of Breakout ends in 5 steps, so both are truncated,
    # their final observations handed back, and the next episode starts.
    assert trunc.all() and not term.any()
    idx, final_obs = final
    assert list(idx) == [0, 1] and final_obs.shape == (2, 10, 10, 4)
    assert not np.array_equal(final_obs, obs)
    assert obs[:, 9, 4, 0].all()  # paddle back at its start column
    assert env.spec["truncation"] == "bootstrapped from final obs"
    del first


def test_seeding_is_deterministic_and_disjoint():
    def rollout(seed):
        env = make_env(env_cfg("MinAtarSeaquest"), 4, seed)
        obs = [env.reset()]
        for a in np.random.default_rng(1).integers(0, 6, size=(200, 4)):
            obs.append(env.step(a)[0])
        return np.stack(obs)

    assert np.array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))
    seeds = [set(env_seeds(s, 8).tolist()) for s in (1, 2, 3)]
    assert all(len(s) == 8 for s in seeds)
    assert not (seeds[0] & seeds[1] or seeds[0] & seeds[2] or seeds[1] & seeds[2])


def test_minatar_network_layout():
    net = make_network((10, 10, 7), 6, image=True, hwc=True, network="minatar")
    assert isinstance(net, MinAtarCNN)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(16, 7, 3, 3), (16,), (128, 1024), (128,), (6, 128), (6,), (1, 128), (1,)]
    obs = torch.from_numpy(np.random.default_rng(0).random((5, 10, 10, 7)) < 0.2)
    logits, value = net(obs)
    assert logits.shape == (5, 6) and value.shape == (5,)
    # Channel c of the HWC grid is input channel c of the conv: same as a CHW network
    # with the same weights on the transposed grid.
    chw = MinAtarCNN((7, 10, 10), 6, hwc=False)
    chw.load_state_dict(net.state_dict())
    logits2, value2 = chw(obs.permute(0, 3, 1, 2))
    torch.testing.assert_close(logits, logits2)
    torch.testing.assert_close(value, value2)
    with pytest.raises(ValueError, match="unknown network"):
        make_network((10, 10, 7), 6, image=True, network="nature")


def test_gymnasium_image_obs_is_hwc():
    # MinAtar through its own Gymnasium registration: a (10, 10, 4) HWC observation.
    import minatar.gym

    minatar.gym.register_envs()
    env = GymBatched(GymEnvConfig(suite="gym", game="MinAtar/Breakout-v1"), 2, seed=0)
    assert env.obs_shape == (10, 10, 4) and env.hwc
    net = make_network(env.obs_shape, env.num_actions, image=True, hwc=env.hwc)
    assert isinstance(net, ImpalaCNN) and net.features[0].conv.in_channels == 4
    assert net(torch.from_numpy(env.reset()))[0].shape == (2, env.num_actions)
    env.close()


RUN = {"device": "cpu", "torch_threads": 1, "env_threads": 1}  # run settings: one core


def test_train_writes_minatar_summary(tmp_path):
    hp = config.resolve("MinAtarAsterix", "scope", {"ppo": {
        "total_steps": 512, "num_envs": 4, "num_steps": 64}})
    summary = train(hp, seed=1, out=tmp_path,
                    run=config.resolve_run(hp, RUN), log=lambda _: None)
    assert summary["global_step"] == 512
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["env_spec"]["suite"] == "minatar" and saved["env_spec"]["game"] == "asterix"
    assert saved["env_spec"]["difficulty_ramping"] is True


# ---------------------------------------------------------------- learning

# The suite's defaults with the published MinAtar PPO step sizes of pgx's minatar-ppo
# example (lr 3e-4, gamma 0.99, clip 0.2, 3 epochs), which learn Breakout in fewer steps
# than the paper's lr 1e-4 / gamma 0.999 (measured: about 3.3 vs 2.2 at 90k of 150k steps),
# so that the test is both short and far from its threshold. The paper's values reach 5x
# random too, in more steps (README).
LEARN_STEPS = 120_000
LEARN = {"total_steps": LEARN_STEPS, "lr": 3e-4, "gamma": 0.99, "clip_coef": 0.2,
         "update_epochs": 3}


def random_policy_return(episodes=300, seed=123):
    env = make_env(env_cfg("MinAtarBreakout"), 16, seed)
    env.reset()
    rng = np.random.default_rng(seed)
    ret, done_returns = np.zeros(16), []
    while len(done_returns) < episodes:
        _, rew, term, trunc, _ = env.step(rng.integers(0, 6, size=16))
        ret += rew
        for i in np.flatnonzero(term | trunc):
            done_returns.append(ret[i])
            ret[i] = 0.0
    return float(np.mean(done_returns))


@pytest.mark.parametrize("loss", ["scope"])  # one learning run per env kind
def test_ppo_learns_minatar_breakout(tmp_path, loss):
    random_mean = random_policy_return()
    assert 0.2 < random_mean < 1.0  # about 0.5: the ball is lost within a few bounces
    hp = config.resolve("MinAtarBreakout", loss, {"ppo": LEARN})
    summary = train(hp, seed=1, out=tmp_path,
                    run=config.resolve_run(hp, {**RUN, "checkpoint_every": 10_000}),
                    log=lambda _: None)
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert summary["global_step"] == LEARN_STEPS
    assert episodes["return"].head(200).mean() < 2 * random_mean  # starts near random ...
    late = episodes[episodes.global_step > 0.8 * LEARN_STEPS]["return"].mean()
    assert late >= 5 * random_mean, (late, random_mean)  # ... and ends >= 5x better
