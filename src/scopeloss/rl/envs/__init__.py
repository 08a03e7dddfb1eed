"""Batched environments, built from a resolved ``env`` config section: one module per suite
(``atari``, ``procgen``, ``gym``, ``minatar``) behind the interface of ``base``; the
learner's reward transforms and the episode bookkeeping are in ``scopeloss.rl.bookkeeping``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from scopeloss.rl.envs.base import BatchedEnv, derive_seed
from scopeloss.params import SUITE_TABLE, EnvConfig, ProcgenEnvConfig


def make_env(cfg: EnvConfig | Mapping[str, Any], num_envs: int, seed: int,
             threads: int | None = None) -> BatchedEnv:
    """The batched training env for a resolved ``env`` section (typed, or the mapping the
    resolver returns); ``threads`` caps the env worker threads (C++ vector envs). Suites
    import lazily: only the one used is loaded."""
    cfg = EnvConfig.of(cfg)
    return suite_module(cfg.suite).Batched(cfg, num_envs, seed, threads=threads)


def suite_module(suite: str) -> Any:
    """The suite's module (``params.SUITE_TABLE``), imported now: its env class and its
    game check."""
    return importlib.import_module(SUITE_TABLE[suite].module)


def make_eval_env(cfg: EnvConfig, num_envs: int, seed: int,
                  threads: int | None = None) -> BatchedEnv | None:
    """Held-out levels (procgen only): ``eval_num_levels`` levels from ``eval_start_level``."""
    if not cfg.traits.held_out:
        return None
    assert isinstance(cfg, ProcgenEnvConfig), "Procgen is the one suite with held-out levels"
    from scopeloss.rl.envs.procgen import ProcgenBatched

    return ProcgenBatched(cfg, num_envs, seed, evaluation=True, threads=threads)


__all__ = ["BatchedEnv", "derive_seed", "make_env", "make_eval_env"]
