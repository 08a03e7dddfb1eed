"""Batched environments behind one small interface, built from an ``env`` config section.

Every env here resets finished sub-environments on the same step ("same-step autoreset"):
``step`` returns the next episode's first observation for a finished env, the reward and
done flag of the step that finished it, and (for truncations) the final observation, so
that the PPO loop can bootstrap a truncated episode and never learns across a reset.
Observations stay uint8 numpy batches (float32 for vector observations); no per-env
Python loops on our side.

* Atari: ale-py's C++ vectorised env (``AtariVectorEnv``) with DeepMind preprocessing done
  in C++ (frame skip with max-pool, 84x84 gray, stack 4, noop and fire reset) and sticky
  actions. Its reward clipping is turned off so that the raw game score is what we log;
  the learner sees ``sign(reward)`` (CleanRL's ClipRewardEnv).
* Procgen: procgen's own vectorised C++ env through its gym3 interface (the baselines
  wrapper builds a Python dict per env per step); ``first`` marks a finished episode. The
  learner sees rewards scaled by a running std of the discounted return and clipped to
  [-10, 10], as Cobbe et al. (baselines VecNormalize) and CleanRL ppo_procgen do.
* Gymnasium ids: ``gymnasium.make_vec(..., vectorization_mode="sync")``; raw rewards.
  A 3-D observation is an image in Gymnasium's height-width-channel layout unless the env's
  ``metadata["obs_layout"]`` says "chw".
* MinAtar: ``scopeloss.rl.minatar.MinAtarBatched`` (N pure-Python games); raw rewards.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class BatchedEnv:
    """Common interface: ``reset() -> obs``; ``step(a) -> obs, reward, terminated, truncated,
    final`` where ``final`` is None or ``(indices, final_obs)`` for truncated envs."""

    num_envs: int
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    num_actions: int
    hwc: bool = False  # image observations stored height-width-channel (procgen, gym, minatar)
    network: str | None = None  # a suite's own network (networks.make_network); None = by obs
    spec: dict[str, Any]

    def reset(self) -> np.ndarray:
        raise NotImplementedError

    def step(self, actions: np.ndarray):
        raise NotImplementedError

    def close(self) -> None:
        pass


def _threads(num_envs: int, threads: int | None = None) -> int:
    """Env worker threads: ``threads`` (the job's allowance, run.env_threads) if given, else
    the cores this process may run on; never more than the envs."""
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            threads = os.cpu_count() or 1
    return max(1, min(num_envs, threads))


def derive_seed(seed: int, *key: int) -> int:
    """An env seed in [0, 2**31) for run seed ``seed`` and stream ``key`` (e.g. (0, update)
    for training envs started at ``update``, (1, update) for an evaluation), drawn with
    ``numpy.random.SeedSequence``: envs get ``base, base+1, ...``, so runs with seeds 1, 2, 3
    no longer share env seeds (``seed, seed+1, ...`` did)."""
    state = np.random.SeedSequence(seed, spawn_key=tuple(key)).generate_state(1, np.uint32)
    return int(state[0] >> 1)


class SameStepAutoresetBatched(BatchedEnv):
    """A Gymnasium-API vector env (ALE's or Gymnasium's) in same-step autoreset mode;
    subclasses set ``env`` and ``seed``. Truncated-not-terminated envs hand back their
    final observation, for bootstrapping."""

    env: Any
    seed: int

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self.seed)  # envs get seeds seed, seed+1, ...
        return obs

    def step(self, actions: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        final = None
        cut = truncated & ~terminated
        if cut.any():
            idx = np.flatnonzero(cut)
            final = (idx, np.stack(info["final_obs"][idx]))  # Gymnasium gives an object array
        return obs, reward.astype(np.float32), terminated, truncated, final

    def close(self) -> None:
        self.env.close()


class AtariBatched(SameStepAutoresetBatched):
    def __init__(self, cfg: dict[str, Any], num_envs: int, seed: int, threads: int | None = None):
        from ale_py.vector_env import AtariVectorEnv

        self.kwargs = dict(
            game=cfg["game"], num_envs=num_envs, frameskip=cfg["frameskip"], grayscale=True,
            stack_num=4, img_height=84, img_width=84, maxpool=True, noop_max=cfg["noop_max"],
            repeat_action_probability=cfg["repeat_action_probability"],
            episodic_life=cfg["episodic_life"], use_fire_reset=True, reward_clipping=False,
            max_num_frames_per_episode=cfg["max_episode_steps"] * cfg["frameskip"],
            full_action_space=False, autoreset_mode="SameStep",
            num_threads=_threads(num_envs, threads),
        )
        self.env = AtariVectorEnv(**self.kwargs)
        self.seed = seed
        self.num_envs = num_envs
        self.obs_shape = tuple(self.env.single_observation_space.shape)
        self.obs_dtype = np.dtype(np.uint8)
        self.num_actions = int(self.env.single_action_space.n)
        self.spec = {**cfg, "ale_kwargs": {k: v for k, v in self.kwargs.items()},
                     "env_seed": seed, "reward_for_learning": "sign(raw reward)",
                     "logged_return": "raw game score (reward clipping off in ALE)",
                     "autoreset": "same-step", "truncation": "bootstrapped from final obs",
                     "num_actions": self.num_actions}


class ProcgenBatched(BatchedEnv):
    hwc = True

    def __init__(self, cfg: dict[str, Any], num_envs: int, seed: int, *, evaluation: bool = False,
                 threads: int | None = None):
        from procgen import ProcgenGym3Env

        levels = ("eval_num_levels", "eval_start_level") if evaluation else ("num_levels", "start_level")
        self.kwargs = dict(
            num=num_envs, env_name=cfg["game"], distribution_mode=cfg["distribution_mode"],
            num_levels=cfg[levels[0]], start_level=cfg[levels[1]], rand_seed=int(seed),
            num_threads=_threads(num_envs, threads),
        )
        self.env = ProcgenGym3Env(**self.kwargs)
        self.num_envs = num_envs
        self.obs_shape = tuple(self.env.ob_space["rgb"].shape)  # (64, 64, 3)
        self.obs_dtype = np.dtype(np.uint8)
        self.num_actions = int(self.env.ac_space.eltype.n)
        self.spec = {**cfg, "procgen_kwargs": dict(self.kwargs), "env_seed": seed,
                     "reward_for_learning": "raw / running std of discounted return, clipped to [-10, 10]",
                     "logged_return": "raw episode reward", "autoreset": "same-step (gym3 first)",
                     "num_actions": self.num_actions}
        self._zeros = np.zeros(num_envs, dtype=bool)

    def reset(self) -> np.ndarray:
        _, ob, _ = self.env.observe()  # gym3 envs start reset; they cannot be reset again
        return ob["rgb"]

    def step(self, actions: np.ndarray):
        self.env.act(actions.astype(np.int32))
        reward, ob, first = self.env.observe()
        # ``first``: this obs starts a new episode, so the reward ended the previous one.
        return ob["rgb"], reward.astype(np.float32), first.astype(bool), self._zeros, None


class GymBatched(SameStepAutoresetBatched):
    def __init__(self, cfg: dict[str, Any], num_envs: int, seed: int):
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        self.env = gym.make_vec(cfg["game"], num_envs, vectorization_mode="sync",
                                vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
        space = self.env.single_action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"env.game {cfg['game']!r} has action space {space}; "
                             "only Discrete action spaces are supported")
        self.seed = seed
        self.num_envs = num_envs
        self.obs_shape = tuple(self.env.single_observation_space.shape)
        self.obs_dtype = np.dtype(self.env.single_observation_space.dtype)
        self.num_actions = int(space.n)
        # Gymnasium's image convention is height-width-channel (e.g. its pixel wrappers);
        # an env whose 3-D observation is channel-first says so with metadata obs_layout "chw".
        layout = (self.env.metadata or {}).get("obs_layout", "hwc")
        if layout not in ("hwc", "chw"):
            raise ValueError(f"env.game {cfg['game']!r}: metadata obs_layout must be hwc or chw, "
                             f"got {layout!r}")
        self.hwc = len(self.obs_shape) == 3 and layout == "hwc"
        self.spec = {**cfg, "vectorization_mode": "sync",
                     "obs_layout": layout if len(self.obs_shape) == 3 else None, "env_seed": seed,
                     "max_episode_steps": self.env.spec.max_episode_steps if self.env.spec else None,
                     "reward_for_learning": "raw reward", "logged_return": "raw episode reward",
                     "autoreset": "same-step", "truncation": "bootstrapped from final obs",
                     "num_actions": self.num_actions}


def make_env(cfg: dict[str, Any], num_envs: int, seed: int,
             threads: int | None = None) -> BatchedEnv:
    """The batched training env for a resolved ``env`` section; ``threads`` caps the env
    worker threads (C++ vector envs)."""
    suite = cfg["suite"]
    if suite == "atari":
        return AtariBatched(cfg, num_envs, seed, threads)
    if suite == "procgen":
        return ProcgenBatched(cfg, num_envs, seed, threads=threads)
    if suite == "gym":
        return GymBatched(cfg, num_envs, seed)
    if suite == "minatar":
        from scopeloss.rl.minatar import MinAtarBatched

        return MinAtarBatched(cfg, num_envs, seed)
    raise ValueError(f"env.suite must be one of atari, procgen, gym, minatar, got {suite!r}")


def make_eval_env(cfg: dict[str, Any], num_envs: int, seed: int,
                  threads: int | None = None) -> BatchedEnv | None:
    """Held-out levels (procgen only): ``eval_num_levels`` levels from ``eval_start_level``."""
    if cfg["suite"] != "procgen":
        return None
    return ProcgenBatched(cfg, num_envs, seed, evaluation=True, threads=threads)


# ---------------------------------------------------------------- rewards for learning

class RewardTransform:
    """What the learner sees; the raw reward is what gets logged."""

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        return reward

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class SignReward(RewardTransform):
    def __call__(self, reward, done):
        return np.sign(reward).astype(np.float32)


class ReturnNormalizer(RewardTransform):
    """Divide by the running std of the discounted return (baselines VecNormalize, ret only)."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8):
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def __call__(self, reward, done):
        self.returns = self.returns * self.gamma + reward
        self._update(self.returns)
        self.returns[done] = 0.0
        scaled = reward / np.sqrt(self.var + self.eps)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def _update(self, x: np.ndarray) -> None:
        # Chan et al. parallel update of mean and variance with a batch.
        b_mean, b_var, b_count = float(x.mean()), float(x.var()), x.size
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean += delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var, self.count = m2 / total, total

    def state_dict(self):
        return {"returns": self.returns.copy(), "mean": self.mean, "var": self.var,
                "count": self.count}

    def load_state_dict(self, state):
        # A resumed job's envs start new episodes, so their discounted returns start at 0.
        self.returns = np.zeros_like(np.asarray(state["returns"], dtype=np.float64))
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


def make_reward_transform(cfg: dict[str, Any], num_envs: int, gamma: float) -> RewardTransform:
    if cfg["suite"] == "atari":
        return SignReward()
    if cfg["suite"] == "procgen":
        return ReturnNormalizer(num_envs, gamma)
    return RewardTransform()


class EpisodeTracker:
    """Raw episode returns and lengths, vectorised over envs; finished ones as arrays.

    Rows are ``[global_step, return, length, truncated_by_resume, time_limit]``: the first
    three are episodes.csv's, ``truncated_by_resume`` marks an episode cut by a resume (its
    env restarted; see ``cut``), ``time_limit`` one that ended by the env's step limit."""

    COLUMNS = 5

    def __init__(self, num_envs: int):
        self.ret = np.zeros(num_envs, dtype=np.float64)
        self.len = np.zeros(num_envs, dtype=np.int64)

    def update(self, raw_reward: np.ndarray, done: np.ndarray, global_step: int,
               time_limit: np.ndarray | None = None):
        """Add one step; return None or a (k, 5) array of the episodes that ended."""
        self.ret += raw_reward
        self.len += 1
        if not done.any():
            return None
        idx = np.flatnonzero(done)
        limit = (np.zeros(idx.size) if time_limit is None
                 else np.asarray(time_limit, dtype=np.float64)[idx])
        rows = np.stack([np.full(idx.size, global_step, dtype=np.float64),
                         self.ret[idx], self.len[idx].astype(np.float64),
                         np.zeros(idx.size), limit], axis=1)
        self.ret[idx] = 0.0
        self.len[idx] = 0
        return rows

    def cut(self, global_step: int) -> np.ndarray:
        """The episodes in flight, as rows flagged ``truncated_by_resume``; then empty."""
        idx = np.flatnonzero(self.len > 0)
        rows = np.stack([np.full(idx.size, global_step, dtype=np.float64), self.ret[idx],
                         self.len[idx].astype(np.float64), np.ones(idx.size),
                         np.zeros(idx.size)], axis=1)
        self.ret[:] = 0.0
        self.len[:] = 0
        return rows

    def state_dict(self) -> dict[str, Any]:
        return {"ret": self.ret.copy(), "len": self.len.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ret = np.asarray(state["ret"], dtype=np.float64).copy()
        self.len = np.asarray(state["len"], dtype=np.int64).copy()
