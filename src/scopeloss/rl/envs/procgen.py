"""Procgen: procgen's own vectorised C++ env through its gym3 interface (the baselines
wrapper builds a Python dict per env per step); ``first`` marks a finished episode. The
learner sees rewards scaled by a running std of the discounted return and clipped to
[-10, 10] (``bookkeeping.ReturnNormalizer``), as Cobbe et al. and CleanRL ppo_procgen do."""

from __future__ import annotations

import dataclasses

import numpy as np

from scopeloss.rl.envs.base import BatchedEnv, worker_threads
from scopeloss.params import ProcgenEnvConfig


class ProcgenBatched(BatchedEnv):
    hwc = True

    def __init__(self, cfg: ProcgenEnvConfig, num_envs: int, seed: int, *,
                 evaluation: bool = False, threads: int | None = None):
        from procgen import ProcgenGym3Env

        self.kwargs = dict(
            num=num_envs, env_name=cfg.game, distribution_mode=cfg.distribution_mode,
            num_levels=cfg.eval_num_levels if evaluation else cfg.num_levels,
            start_level=cfg.eval_start_level if evaluation else cfg.start_level,
            rand_seed=int(seed),
            num_threads=worker_threads(num_envs, threads),
        )
        self.env = ProcgenGym3Env(**self.kwargs)
        self.num_envs = num_envs
        self.obs_shape = tuple(self.env.ob_space["rgb"].shape)  # (64, 64, 3)
        self.obs_dtype = np.dtype(np.uint8)
        self.num_actions = int(self.env.ac_space.eltype.n)
        self.spec = {**dataclasses.asdict(cfg), "procgen_kwargs": dict(self.kwargs), "env_seed": seed,
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


Batched = ProcgenBatched  # the suite's env class (params.SUITE_TABLE)


def game_problem(game: str) -> str | None:
    """What a Procgen game name must be, when ``game`` is not one."""
    from procgen.env import ENV_NAMES

    return None if game in ENV_NAMES else f"one of {', '.join(ENV_NAMES)}"
