"""The rollout phase of PPO: one record of T steps x N envs, filled by acting in the env,
then turned into advantages and returns by GAE (Schulman et al. 2016).

``Rollout`` preallocates its tensors on the device (observations as the env gives them,
uint8 for images; one extra row for the bootstrap value); ``collect`` acts for ``steps``
steps under ``torch.inference_mode`` with no per-env Python loop (the env is batched),
stores what the update needs, logs raw rewards through the ``EpisodeTracker`` and feeds
the learner the transformed ones. A truncated (not terminated) episode is bootstrapped
from the value of its final observation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class ObsCopier:
    """Observation batches from the env (numpy) into device tensors. On CUDA: two pinned
    staging buffers, each with an event recorded after its async copy; a buffer is refilled
    only once the copy that last read it has finished. On the CPU: one plain copy."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
        self.pinned = device.type == "cuda"
        self.stages = [torch.empty(shape, dtype=dtype, pin_memory=True)
                       for _ in range(2)] if self.pinned else []
        self.events = [torch.cuda.Event() for _ in range(2)] if self.pinned else []
        self.slot = 0

    def __call__(self, dst: torch.Tensor, obs: np.ndarray) -> None:
        if not self.pinned:
            dst.copy_(torch.from_numpy(obs))
            return
        k = self.slot
        self.events[k].synchronize()  # the previous transfer out of this buffer is done
        self.stages[k].numpy()[...] = obs  # one host copy into pinned memory ...
        dst.copy_(self.stages[k], non_blocking=True)  # ... then an async transfer
        self.events[k].record()
        self.slot = 1 - k


@dataclass
class Rollout:
    """T steps of N envs, on ``device``; ``steps`` of them filled by the last ``collect``."""

    num_steps: int
    num_envs: int
    obs_shape: tuple[int, ...]
    obs_dtype: torch.dtype
    device: torch.device
    steps: int = 0
    obs: torch.Tensor = field(init=False)
    actions: torch.Tensor = field(init=False)
    logprobs: torch.Tensor = field(init=False)
    values: torch.Tensor = field(init=False)
    rewards: np.ndarray = field(init=False)
    ends: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        T, N, dev = self.num_steps, self.num_envs, self.device
        self.obs = torch.zeros((T + 1, N, *self.obs_shape), dtype=self.obs_dtype, device=dev)
        self.actions = torch.zeros((T, N), dtype=torch.long, device=dev)
        self.logprobs = torch.zeros((T, N), device=dev)
        self.values = torch.zeros((T + 1, N), device=dev)
        self.rewards = np.zeros((T, N), dtype=np.float32)
        self.ends = np.zeros((T, N), dtype=np.float32)
        self.copy_obs = ObsCopier((N, *self.obs_shape), self.obs_dtype, self.device)

    def carry_over(self) -> None:
        """The next rollout starts from this one's last observation."""
        self.obs[0].copy_(self.obs[self.steps])


@dataclass(frozen=True)
class Acting:
    """What acting in the env needs, built once per run: the policy (logits, value), the
    batched env, the reward transform, the episode tracker and the autocast context."""

    policy: Callable
    env: Any
    reward_tf: Callable
    tracker: Any
    autocast: Any


def collect(rollout: Rollout, steps: int, acting: Acting, *, gamma: float, global_step: int,
            timers: dict) -> tuple[int, list[np.ndarray]]:
    """Act ``steps`` steps from ``rollout.obs[0]``; return the new global step and the rows of
    the episodes that ended (``EpisodeTracker.update``). ``timers`` gains env and policy time."""
    policy, env, autocast, tracker = acting.policy, acting.env, acting.autocast, acting.tracker
    reward_tf = acting.reward_tf
    N = rollout.num_envs
    finished: list[np.ndarray] = []
    with torch.inference_mode():
        for t in range(steps):
            t0 = time.perf_counter()
            with autocast:
                logits, value = policy(rollout.obs[t])
            log_p = torch.log_softmax(logits.float(), dim=-1)
            action = sample(log_p)
            rollout.actions[t] = action
            rollout.logprobs[t] = log_p.gather(1, action[:, None]).squeeze(1)
            rollout.values[t] = value.float()
            action_np = action.cpu().numpy()
            t1 = time.perf_counter()
            obs, raw, term, trunc, final = env.step(action_np)
            t2 = time.perf_counter()
            timers["env"] += t2 - t1
            global_step += N
            done = term | trunc
            rollout.rewards[t] = reward_tf(raw, done)
            rollout.ends[t] = done
            if final is not None:  # truncated, not terminated: bootstrap from V(final obs)
                idx, final_obs = final
                with autocast:
                    _, v_final = policy(torch.as_tensor(final_obs, device=rollout.device))
                rollout.rewards[t, idx] += gamma * v_final.float().cpu().numpy()
            ended = tracker.update(raw, done, global_step, trunc & ~term)
            if ended is not None:
                finished.append(ended)
            rollout.copy_obs(rollout.obs[t + 1], obs)
            timers["policy"] += (t1 - t0) + (time.perf_counter() - t2)
        with autocast:
            rollout.values[steps] = policy(rollout.obs[steps])[1].float()
    rollout.steps = steps
    return global_step, finished


def sample(log_p: torch.Tensor) -> torch.Tensor:
    """One action per row of log-probabilities, by inverse CDF: a uniform draw located in
    the cumulative probabilities (a few cheap ops; ``torch.multinomial`` validates its input
    on every call, a fifth of a MinAtar rollout step). The clamp guards the rare draw above
    a cumulative sum that rounds to just below 1."""
    cdf = log_p.exp().cumsum(1)
    u = torch.rand((log_p.shape[0], 1), device=log_p.device)
    return torch.searchsorted(cdf, u).clamp_(max=log_p.shape[1] - 1).squeeze(1)


def compute_gae(rewards: np.ndarray, values: np.ndarray, ends: np.ndarray, gamma: float,
                gae_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE over a rollout, on the host (float32 numpy: a step's few ops cost a microsecond
    each, not a tensor dispatch each). ``values`` has one more row (the bootstrap);
    ``ends[t]`` says the episode ended at step t, so nothing flows back across it. Returns
    (advantages, returns)."""
    steps = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    nonterminal = 1.0 - ends
    for t in reversed(range(steps)):
        delta = rewards[t] + gamma * values[t + 1] * nonterminal[t] - values[t]
        last = delta + gamma * gae_lambda * nonterminal[t] * last
        advantages[t] = last
    return advantages, advantages + values[:steps]


@dataclass
class Batch:
    """A collected rollout, flattened over (step, env), with its advantages and returns."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    @property
    def size(self) -> int:
        return self.actions.numel()


def advantages(rollout: Rollout, gamma: float, gae_lambda: float) -> Batch:
    """GAE on the filled steps and the flattened batch the update draws minibatches from."""
    s, dev = rollout.steps, rollout.device
    values = rollout.values[: s + 1].cpu().numpy()  # once per update
    adv, returns = compute_gae(rollout.rewards[:s], values, rollout.ends[:s], gamma, gae_lambda)
    return Batch(obs=rollout.obs[:s].reshape(-1, *rollout.obs_shape),
                 actions=rollout.actions[:s].reshape(-1), logprobs=rollout.logprobs[:s].reshape(-1),
                 values=rollout.values[:s].reshape(-1),
                 advantages=torch.from_numpy(adv.reshape(-1)).to(dev),
                 returns=torch.from_numpy(returns.reshape(-1)).to(dev))
