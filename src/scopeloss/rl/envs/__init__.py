"""Batched environments, built from a resolved ``env`` config section: one module per suite
(``atari``, ``procgen``, ``gym``, ``minatar``) behind the interface of ``base``; the
learner's reward transforms and the episode bookkeeping are in ``scopeloss.rl.bookkeeping``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scopeloss.rl.envs.base import BatchedEnv, derive_seed
from scopeloss.params import (AtariEnvConfig, EnvConfig, GymEnvConfig, MinAtarEnvConfig,
                              ProcgenEnvConfig)


def make_env(cfg: EnvConfig | Mapping[str, Any], num_envs: int, seed: int,
             threads: int | None = None) -> BatchedEnv:
    """The batched training env for a resolved ``env`` section (typed, or the mapping the
    resolver returns); ``threads`` caps the env worker threads (C++ vector envs). Suites
    import lazily: only the one used is loaded."""
    cfg = EnvConfig.of(cfg)
    if isinstance(cfg, AtariEnvConfig):
        from scopeloss.rl.envs.atari import AtariBatched

        return AtariBatched(cfg, num_envs, seed, threads)
    if isinstance(cfg, ProcgenEnvConfig):
        from scopeloss.rl.envs.procgen import ProcgenBatched

        return ProcgenBatched(cfg, num_envs, seed, threads=threads)
    if isinstance(cfg, GymEnvConfig):
        from scopeloss.rl.envs.gym import GymBatched

        return GymBatched(cfg, num_envs, seed)
    if isinstance(cfg, MinAtarEnvConfig):
        from scopeloss.rl.envs.minatar import MinAtarBatched

        return MinAtarBatched(cfg, num_envs, seed)
    raise AssertionError(f"no env builder for suite {cfg.suite!r}")  # EnvConfig.of refused it


def make_eval_env(cfg: EnvConfig, num_envs: int, seed: int,
                  threads: int | None = None) -> BatchedEnv | None:
    """Held-out levels (procgen only): ``eval_num_levels`` levels from ``eval_start_level``."""
    if not cfg.traits.held_out:
        return None
    assert isinstance(cfg, ProcgenEnvConfig), "Procgen is the one suite with held-out levels"
    from scopeloss.rl.envs.procgen import ProcgenBatched

    return ProcgenBatched(cfg, num_envs, seed, evaluation=True, threads=threads)


__all__ = ["BatchedEnv", "derive_seed", "make_env", "make_eval_env"]
