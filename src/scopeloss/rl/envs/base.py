"""The batched-env interface every suite implements, and the seeds and threads it is given.

Every env resets finished sub-environments on the same step ("same-step autoreset"):
``step`` returns the next episode's first observation for a finished env, the reward and
done flag of the step that finished it, and (for truncations) the final observation, so
that the PPO loop can bootstrap a truncated episode and never learns across a reset.
Observations stay uint8 numpy batches (float32 for vector observations); no per-env
Python loops on our side (MinAtar's games are Python objects: one tight loop there).
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


def worker_threads(num_envs: int, threads: int | None = None) -> int:
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
