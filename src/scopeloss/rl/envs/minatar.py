"""MinAtar (Young & Tian 2019) behind the ``BatchedEnv`` interface of ``scopeloss.rl.envs.base``.

MinAtar's games are pure Python objects, one per env; there is no vectorised engine to call.
``MinAtarBatched`` keeps N ``minatar.Environment`` objects and steps them in one tight loop
per vector step: act, reset on the same step when the game ended, write the 10x10xC state
into one preallocated (N, 10, 10, C) bool buffer. Everything else (episode bookkeeping,
reward handling, the network input) is done on the whole batch by the caller.

Semantics are the package's own (``minatar.Environment``): the full 6-action set, sticky
actions with probability ``sticky_action_prob`` (0.1) drawn from each env's own RNG,
difficulty ramping on (Asterix, Seaquest, Space Invaders speed up as an episode goes on),
raw rewards (what we log is what the learner sees), no time limit unless
``max_episode_steps`` is set (then the episode is truncated and bootstrapped from its final
observation, like the other suites). Per-env seeds come from ``numpy.random.SeedSequence``
so that runs with different seeds share no env seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scopeloss.params import RL_ENV
from scopeloss.rl.envs.base import BatchedEnv
from scopeloss.params import MinAtarEnvConfig

# Config key -> the package's module name (minatar.environments.<name>).
GAMES = RL_ENV["minatar"]["game"].choices


def env_seeds(seed: int, num_envs: int) -> np.ndarray:
    """Distinct 32-bit seeds for ``num_envs`` envs, independent across run seeds."""
    return np.random.SeedSequence(int(seed)).generate_state(num_envs, dtype=np.uint32)


class MinAtarBatched(BatchedEnv):
    """N MinAtar games, same-step autoreset; obs ``(N, 10, 10, C)`` bool, height-width-channel."""

    hwc = True
    network = "minatar"

    def __init__(self, cfg: MinAtarEnvConfig, num_envs: int, seed: int,
                 threads: int | None = None):  # Python envs, stepped in this thread
        from importlib.metadata import version

        from minatar import Environment

        if cfg.game not in GAMES:
            raise ValueError(f"env.game must be one of {', '.join(GAMES)}, got {cfg.game!r}")
        self.envs = [Environment(cfg.game, sticky_action_prob=cfg.sticky_action_prob,
                                 difficulty_ramping=cfg.difficulty_ramping)
                     for _ in range(num_envs)]
        self.seeds = env_seeds(seed, num_envs)
        self.max_steps = cfg.max_episode_steps or 0
        self.num_envs = num_envs
        self.obs_shape = tuple(int(s) for s in self.envs[0].state_shape())  # (10, 10, C)
        self.obs_dtype = np.dtype(bool)
        self.num_actions = int(self.envs[0].num_actions())  # 6: MinAtar's full action set
        self._obs = np.zeros((num_envs, *self.obs_shape), dtype=bool)
        self._reward = np.zeros(num_envs, dtype=np.float32)
        self._term = np.zeros(num_envs, dtype=bool)
        self._trunc = np.zeros(num_envs, dtype=bool)
        self._len = np.zeros(num_envs, dtype=np.int64)
        self.spec = {**dataclasses.asdict(cfg), "package": f"minatar {version('minatar')}",
                     "env_seed": seed, "env_seeds": "numpy SeedSequence(env_seed), one per env",
                     "action_set": "full (6 actions)", "obs": "(10, 10, C) bool, HWC",
                     "reward_for_learning": "raw reward", "logged_return": "raw episode reward",
                     "autoreset": "same-step",
                     "truncation": "bootstrapped from final obs" if self.max_steps else "none",
                     "num_actions": self.num_actions}

    def reset(self) -> np.ndarray:
        for i, (env, s) in enumerate(zip(self.envs, self.seeds)):
            env.seed(int(s))
            env.reset()
            self._obs[i] = env.state()
        self._len[:] = 0
        return self._obs.copy()

    def step(self, actions: np.ndarray):
        reward, term, obs = self._reward, self._term, self._obs
        acts = np.asarray(actions).tolist()  # Python ints: cheaper to index with than numpy
        finals = []
        self._len += 1
        cut = (self._len >= self.max_steps) if self.max_steps else None
        for i, env in enumerate(self.envs):
            r, done = env.act(acts[i])
            reward[i] = r
            term[i] = done
            if done or (cut is not None and cut[i]):
                if not done:
                    finals.append((i, env.state()))
                env.reset()  # like the package: the sticky last action carries over
            obs[i] = env.state()
        ended = term.copy()
        trunc = self._trunc
        if cut is not None:
            np.logical_and(cut, ~term, out=trunc)
            ended |= trunc
        self._len[ended] = 0
        final = None
        if finals:
            final = (np.array([i for i, _ in finals]), np.stack([o for _, o in finals]))
        return obs.copy(), reward.copy(), term.copy(), trunc.copy(), final


Batched = MinAtarBatched  # the suite's env class (params.SUITE_TABLE)


def game_problem(game: str) -> str | None:
    """MinAtar's games are the declaration's choices (env.game), checked with every key."""
    return None
