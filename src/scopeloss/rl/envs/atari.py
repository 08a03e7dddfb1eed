"""Atari: ale-py's C++ vectorised env (``AtariVectorEnv``) with DeepMind preprocessing done
in C++ (frame skip with max-pool, 84x84 gray, stack 4, noop and fire reset) and sticky
actions. Its reward clipping is turned off so that the raw game score is what we log; the
learner sees ``sign(reward)`` (CleanRL's ClipRewardEnv: ``bookkeeping.SignReward``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from scopeloss.rl.envs.base import SameStepAutoresetBatched, worker_threads
from scopeloss.params import AtariEnvConfig


class AtariBatched(SameStepAutoresetBatched):
    def __init__(self, cfg: AtariEnvConfig, num_envs: int, seed: int, threads: int | None = None):
        from ale_py.vector_env import AtariVectorEnv

        self.kwargs: dict[str, Any] = dict(
            game=cfg.game, num_envs=num_envs, frameskip=cfg.frameskip, grayscale=True,
            stack_num=4, img_height=84, img_width=84, maxpool=True, noop_max=cfg.noop_max,
            repeat_action_probability=cfg.repeat_action_probability,
            episodic_life=cfg.episodic_life, use_fire_reset=True, reward_clipping=False,
            max_num_frames_per_episode=cfg.max_episode_steps * cfg.frameskip,
            full_action_space=False, autoreset_mode="SameStep",
            num_threads=worker_threads(num_envs, threads),
        )
        self.env = AtariVectorEnv(**self.kwargs)
        self.seed = seed
        self.num_envs = num_envs
        self.obs_shape = tuple(self.env.single_observation_space.shape)
        self.obs_dtype = np.dtype(np.uint8)
        self.num_actions = int(self.env.single_action_space.n)
        self.spec = {**dataclasses.asdict(cfg), "ale_kwargs": {k: v for k, v in self.kwargs.items()},
                     "env_seed": seed, "reward_for_learning": "sign(raw reward)",
                     "logged_return": "raw game score (reward clipping off in ALE)",
                     "autoreset": "same-step", "truncation": "bootstrapped from final obs",
                     "num_actions": self.num_actions}


Batched = AtariBatched  # the suite's env class (params.SUITE_TABLE)


def game_problem(game: str) -> str | None:
    """What an Atari game name must be, when ``game`` is not one."""
    from ale_py import roms

    if game in roms.get_all_rom_ids():
        return None
    return "an installed ALE ROM id (snake_case, e.g. pong, montezuma_revenge)"
