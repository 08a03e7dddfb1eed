"""What the learner sees of rewards, and the raw episodes that get logged.

``make_reward_transform`` gives the learner's rewards per suite (Atari ``sign``, Procgen a
running return normaliser, others raw); ``EpisodeTracker`` accumulates raw returns and
lengths over a batch of envs and hands back the episodes that ended.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scopeloss.params import EnvConfig


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


def make_reward_transform(cfg: EnvConfig, num_envs: int, gamma: float) -> RewardTransform:
    reward = cfg.traits.reward
    if reward == "sign":
        return SignReward()
    if reward == "normalized":
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
