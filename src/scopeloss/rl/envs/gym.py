"""Gymnasium ids: ``gymnasium.make_vec(..., vectorization_mode="sync")``; raw rewards. A 3-D
observation is an image in Gymnasium's height-width-channel layout unless the env's
``metadata["obs_layout"]`` says "chw"."""

from __future__ import annotations

import dataclasses

import numpy as np

from scopeloss.rl.envs.base import SameStepAutoresetBatched
from scopeloss.params import GymEnvConfig


class GymBatched(SameStepAutoresetBatched):
    def __init__(self, cfg: GymEnvConfig, num_envs: int, seed: int,
                 threads: int | None = None):  # Python envs, stepped in this thread
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        self.env = gym.make_vec(cfg.game, num_envs, vectorization_mode="sync",
                                vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
        space = self.env.single_action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"env.game {cfg.game!r} has action space {space}; "
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
            raise ValueError(f"env.game {cfg.game!r}: metadata obs_layout must be hwc or chw, "
                             f"got {layout!r}")
        self.hwc = len(self.obs_shape) == 3 and layout == "hwc"
        self.spec = {**dataclasses.asdict(cfg), "vectorization_mode": "sync",
                     "obs_layout": layout if len(self.obs_shape) == 3 else None, "env_seed": seed,
                     "max_episode_steps": self.env.spec.max_episode_steps if self.env.spec else None,
                     "reward_for_learning": "raw reward", "logged_return": "raw episode reward",
                     "autoreset": "same-step", "truncation": "bootstrapped from final obs",
                     "num_actions": self.num_actions}


Batched = GymBatched  # the suite's env class (params.SUITE_TABLE)


def game_problem(game: str) -> str | None:
    """What a Gymnasium env name must be, when ``game`` is not one."""
    import gymnasium

    return None if game in gymnasium.envs.registry else "a registered Gymnasium id"
