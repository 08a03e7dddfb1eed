"""PPO (Schulman et al. 2017) with the paper's four policy losses, CleanRL-style.

One function, ``train``, holds the whole loop: collect a rollout under
``torch.inference_mode`` (no per-env Python loop: the env is batched, observations are
copied once into a preallocated uint8 buffer on the device), GAE, then a few epochs of
minibatch updates with per-minibatch z-score advantage normalisation (eq. 9), the policy
loss ``scopeloss.losses.ppo_policy_loss`` chosen by name, CleanRL's clipped value loss
weighted by ``vf_coef``, global gradient-norm clipping and Adam.

Outputs (docs/CONTRACT.md) are accumulated in memory and written atomically at every
checkpoint and at the end; the checkpoint holds them too, so a killed job rerun with the
same command continues from ``DIR/.ckpt/checkpoint.pt`` and keeps every logged episode.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from scopeloss import io
from scopeloss.devices import bf16_autocast, resolve_device, use_fast_cuda_kernels
from scopeloss.losses import ppo_policy_loss
from scopeloss.rl.envs import EpisodeTracker, make_env, make_eval_env, make_reward_transform
from scopeloss.rl.networks import make_network
from scopeloss.runinfo import run_info

EPISODE_COLUMNS = ["global_step", "return", "length"]
UPDATE_COLUMNS = ["update", "global_step", "policy_loss", "value_loss", "entropy", "approx_kl",
                  "clipfrac", "max_prob", "lr", "sps"]
CKPT_NAME = "checkpoint.pt"


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")


def finished_summary(out: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a completed run with the same env, loss, seed and hparams, else None."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    same = all(summary.get(k) == v for k, v in meta.items())
    return summary if same and summary.get("global_step") == meta["total_steps"] else None


def compute_gae(rewards, values, ends, gamma: float, gae_lambda: float):
    """GAE over a rollout. ``values`` has one more row (the bootstrap); ``ends[t]`` says the
    episode ended at step t, so nothing flows back across it. Returns (advantages, returns)."""
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(steps)):
        nonterminal = 1.0 - ends[t]
        delta = rewards[t] + gamma * values[t + 1] * nonterminal - values[t]
        last = delta + gamma * gae_lambda * nonterminal * last
        advantages[t] = last
    return advantages, advantages + values[:steps]


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def evaluate(policy: nn.Module, env, device: torch.device, autocast, max_steps: int = 100_000):
    """First episode of every env of ``env`` (held-out levels) under the current policy;
    returns an (num_envs, 2) array [return, length]."""
    tracker = EpisodeTracker(env.num_envs)
    result = np.full((env.num_envs, 2), np.nan)
    pending = np.ones(env.num_envs, dtype=bool)
    obs = env.reset()
    with torch.inference_mode():
        for _ in range(max_steps):
            with autocast:
                logits, _ = policy(torch.as_tensor(obs, device=device))
            actions = torch.multinomial(torch.softmax(logits.float(), -1), 1).squeeze(1)
            obs, raw, term, trunc, _ = env.step(actions.cpu().numpy())
            done = term | trunc
            ended = done & pending
            if ended.any():
                idx = np.flatnonzero(ended)
                result[idx, 0] = tracker.ret[idx] + raw[idx]
                result[idx, 1] = tracker.len[idx] + 1
                pending[idx] = False
                if not pending.any():
                    break
            tracker.update(raw, done, 0)
    return result[~pending]


def train(hp: dict[str, Any], *, env_name: str, loss: str, seed: int, out_dir: str | Path,
          log=print) -> dict[str, Any]:
    """Run (or resume, or skip if finished) one PPO job; returns its summary."""
    out = Path(out_dir)
    check_out_dir(out)
    env_cfg, p, alpha = hp["env"], hp["ppo"], hp["loss"]["alpha"]
    meta = {"env": env_name, "loss": loss, "seed": seed, "total_steps": p["total_steps"],
            "hparams": hp}
    done_summary = finished_summary(out, meta)
    if done_summary is not None:
        log(f"{out}: already finished ({p['total_steps']} steps); nothing to do")
        return done_summary
    out.mkdir(parents=True, exist_ok=True)
    # A summary from other settings must not sit beside a run that is not finished.
    (out / "summary.json").unlink(missing_ok=True)
    ckpt_path = out / ".ckpt" / CKPT_NAME

    # ---------------------------------------------------------------- setup
    device = resolve_device(p["device"], "ppo.device")
    if p["torch_threads"]:
        torch.set_num_threads(p["torch_threads"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    use_fast_cuda_kernels(device)
    autocast = bf16_autocast(device, p["bf16"])

    N, T = p["num_envs"], p["num_steps"]
    batch = N * T
    num_updates = math.ceil(p["total_steps"] / batch)

    # Resume state, if any, from a run with the same settings.
    ckpt = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt["meta"] != meta:
            log(f"{ckpt_path}: checkpoint is from other settings; starting afresh")
            ckpt = None
    start_update = ckpt["update"] + 1 if ckpt else 1
    # A resumed job's envs start new episodes: give them fresh seeds.
    env_seed = seed if ckpt is None else (seed + 7919 * start_update) % 2**31
    env = make_env(env_cfg, N, env_seed)
    image = len(env.obs_shape) == 3
    agent = make_network(env.obs_shape, env.num_actions, image=image, hwc=env.hwc,
                         network=env.network).to(device)
    if image:
        agent = agent.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(agent.parameters(), lr=p["lr"], eps=1e-5)
    policy = torch.compile(agent) if p["compile"] else agent
    reward_tf = make_reward_transform(env_cfg, N, p["gamma"])
    tracker = EpisodeTracker(N)

    episodes: list[np.ndarray] = []  # (k, 3) arrays: global_step, return, length
    update_rows: list[dict[str, float]] = []
    eval_rows: list[np.ndarray] = []
    global_step, wall_before = 0, 0.0
    # Seconds spent: env stepping; policy forward + sampling + bookkeeping + obs copy;
    # GAE + minibatch updates; held-out evaluation; writing outputs and checkpoints.
    timers = dict.fromkeys(("env", "policy", "update", "eval", "checkpoint"), 0.0)
    if ckpt:
        agent.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        reward_tf.load_state_dict(ckpt["reward_transform"])
        _set_rng_state(ckpt["rng"], device)
        global_step, wall_before = ckpt["global_step"], ckpt["wall_time_s"]
        episodes = [ckpt["episodes"]] if len(ckpt["episodes"]) else []
        update_rows, timers = ckpt["updates"], ckpt["timers"]
        eval_rows = [ckpt["eval"]] if len(ckpt["eval"]) else []
        log(f"resuming {out} at update {start_update}/{num_updates}, step {global_step}")

    # Rollout storage, preallocated on the device; obs has one extra row for the bootstrap.
    obs_dtype = torch.from_numpy(np.zeros(0, dtype=env.obs_dtype)).dtype
    obs_buf = torch.zeros((T + 1, N, *env.obs_shape), dtype=obs_dtype, device=device)
    actions = torch.zeros((T, N), dtype=torch.long, device=device)
    logprobs = torch.zeros((T, N), device=device)
    values = torch.zeros((T + 1, N), device=device)
    rewards_np = np.zeros((T, N), dtype=np.float32)
    ends_np = np.zeros((T, N), dtype=np.float32)
    pinned = device.type == "cuda"
    stage = torch.empty((N, *env.obs_shape) if pinned else (0,), dtype=obs_dtype, pin_memory=pinned)

    def to_device(dst: torch.Tensor, obs: np.ndarray) -> None:
        if not pinned:
            dst.copy_(torch.from_numpy(obs))  # CPU: one copy straight into the buffer
            return
        stage.numpy()[...] = obs  # CUDA: one host copy into pinned memory ...
        dst.copy_(stage, non_blocking=True)  # ... then an async transfer

    def outputs_to_disk() -> None:
        ep = np.concatenate(episodes) if episodes else np.zeros((0, 3))
        ep_df = pd.DataFrame(ep, columns=EPISODE_COLUMNS).astype(
            {"global_step": "int64", "length": "int64"})
        io.write_csv(out / "episodes.csv", ep_df)
        io.write_csv(out / "updates.csv", pd.DataFrame(update_rows, columns=UPDATE_COLUMNS))
        if env_cfg["suite"] == "procgen":
            ev = np.concatenate(eval_rows) if eval_rows else np.zeros((0, 3))
            io.write_csv(out / "eval.csv", pd.DataFrame(ev, columns=EPISODE_COLUMNS).astype(
                {"global_step": "int64", "length": "int64"}))

    def save_checkpoint(update: int, wall: float) -> None:
        io.torch_save(ckpt_path, {
            "meta": meta, "update": update, "global_step": global_step, "wall_time_s": wall,
            "model": agent.state_dict(), "optimizer": optimizer.state_dict(),
            "reward_transform": reward_tf.state_dict(), "rng": _rng_state(device),
            "episodes": np.concatenate(episodes) if episodes else np.zeros((0, 3)),
            "updates": update_rows, "timers": timers,
            "eval": np.concatenate(eval_rows) if eval_rows else np.zeros((0, 3)),
        })

    def run_eval(update: int) -> None:
        t0 = time.perf_counter()
        eval_env = make_eval_env(env_cfg, p["eval_episodes"], (seed * 100_003 + update) % 2**31)
        result = evaluate(policy, eval_env, device, autocast)
        eval_env.close()
        eval_rows.append(np.column_stack([np.full(len(result), global_step), result]))
        timers["eval"] += time.perf_counter() - t0
        log(f"eval at step {global_step}: mean return {result[:, 0].mean():.2f} "
            f"over {len(result)} held-out episodes")

    # ---------------------------------------------------------------- training loop
    t_start = time.perf_counter()
    to_device(obs_buf[0], env.reset())
    for update in range(start_update, num_updates + 1):
        t_update = time.perf_counter()
        steps = min(T, (p["total_steps"] - global_step) // N)  # the last rollout may be shorter
        lr = p["lr"] * (1.0 - (update - 1) / num_updates) if p["anneal_lr"] else p["lr"]
        for group in optimizer.param_groups:
            group["lr"] = lr

        # Rollout: the policy acts; the env steps; raw rewards are logged, transformed ones learnt.
        with torch.inference_mode():
            for t in range(steps):
                t0 = time.perf_counter()
                with autocast:
                    logits, value = policy(obs_buf[t])
                log_p = torch.log_softmax(logits.float(), dim=-1)
                action = torch.multinomial(log_p.exp(), 1).squeeze(1)
                actions[t] = action
                logprobs[t] = log_p.gather(1, action[:, None]).squeeze(1)
                values[t] = value.float()
                action_np = action.cpu().numpy()
                t1 = time.perf_counter()
                obs, raw, term, trunc, final = env.step(action_np)
                t2 = time.perf_counter()
                timers["env"] += t2 - t1
                global_step += N
                done = term | trunc
                rewards_np[t] = reward_tf(raw, done)
                ends_np[t] = done
                if final is not None:  # truncated, not terminated: bootstrap from V(final obs)
                    idx, final_obs = final
                    with autocast:
                        _, v_final = policy(torch.as_tensor(final_obs, device=device))
                    rewards_np[t, idx] += p["gamma"] * v_final.float().cpu().numpy()
                finished = tracker.update(raw, done, global_step)
                if finished is not None:
                    episodes.append(finished)
                to_device(obs_buf[t + 1], obs)
                timers["policy"] += (t1 - t0) + (time.perf_counter() - t2)
            with autocast:
                values[steps] = policy(obs_buf[steps])[1].float()

        # GAE, outside inference mode: its results are saved for backward in the update.
        t_learn = time.perf_counter()
        with torch.no_grad():
            rewards = torch.from_numpy(rewards_np[:steps]).to(device)
            ends = torch.from_numpy(ends_np[:steps]).to(device)
            advantages, returns = compute_gae(rewards, values[: steps + 1], ends,
                                              p["gamma"], p["gae_lambda"])
        b_obs = obs_buf[:steps].reshape(-1, *env.obs_shape)
        b_actions = actions[:steps].reshape(-1)
        b_logprobs = logprobs[:steps].reshape(-1)
        b_values = values[:steps].reshape(-1)
        b_adv, b_returns = advantages.reshape(-1), returns.reshape(-1)
        size = b_actions.numel()

        stats = torch.zeros(7, device=device)  # pg, v, entropy, kl, clipfrac, max_prob, count
        for _epoch in range(p["update_epochs"]):
            perm = torch.randperm(size, device=device)
            for mb in perm.tensor_split(min(p["num_minibatches"], size)):
                with autocast:
                    logits, new_value = policy(b_obs[mb])
                logits, new_value = logits.float(), new_value.float()
                mb_adv = b_adv[mb]
                if p["norm_adv"] and mb.numel() > 1:  # eq. 9, per minibatch
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = ppo_policy_loss(loss, logits, b_actions[mb], b_logprobs[mb], mb_adv,
                                          clip_coef=p["clip_coef"], alpha=alpha)
                v_loss_unclipped = (new_value - b_returns[mb]) ** 2
                if p["clip_vloss"]:  # CleanRL: 0.5 * max(unclipped, clipped), then x vf_coef
                    v_clipped = b_values[mb] + (new_value - b_values[mb]).clamp(
                        -p["clip_coef"], p["clip_coef"])
                    v_loss = 0.5 * torch.max(v_loss_unclipped, (v_clipped - b_returns[mb]) ** 2).mean()
                else:
                    v_loss = 0.5 * v_loss_unclipped.mean()
                total = pg_loss + p["vf_coef"] * v_loss

                optimizer.zero_grad(set_to_none=True)
                total.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), p["max_grad_norm"])
                optimizer.step()

                with torch.no_grad():  # diagnostics; synced once per update, not per minibatch
                    log_p = torch.log_softmax(logits, dim=-1)
                    probs = log_p.exp()
                    log_ratio = log_p.gather(1, b_actions[mb, None]).squeeze(1) - b_logprobs[mb]
                    ratio = log_ratio.exp()
                    stats += torch.stack([
                        pg_loss.detach(), v_loss.detach(), -(probs * log_p).sum(1).mean(),
                        ((ratio - 1) - log_ratio).mean(),
                        ((ratio - 1).abs() > p["clip_coef"]).float().mean(),
                        probs.max(1).values.mean(), torch.ones((), device=device)])
        pg, vl, ent, kl, cf, mp, count = (stats[:6] / stats[6]).tolist() + [stats[6].item()]
        if not all(math.isfinite(x) for x in (pg, vl, ent)):
            raise FloatingPointError(f"non-finite loss at update {update}: policy {pg}, value {vl}")
        timers["update"] += time.perf_counter() - t_learn
        dt = time.perf_counter() - t_update
        update_rows.append({"update": update, "global_step": global_step, "policy_loss": pg,
                            "value_loss": vl, "entropy": ent, "approx_kl": kl, "clipfrac": cf,
                            "max_prob": mp, "lr": lr, "sps": steps * N / dt})
        # Start the next rollout from the last observation.
        obs_buf[0].copy_(obs_buf[steps])

        if p["eval_every"] and env_cfg["suite"] == "procgen" and (
                update % p["eval_every"] == 0 or update == num_updates):
            run_eval(update)
        if update % max(1, num_updates // 20) == 0 or update == num_updates:
            recent = np.concatenate(episodes[-20:])[:, 1].mean() if episodes else float("nan")
            log(f"update {update}/{num_updates} step {global_step} sps {steps * N / dt:.0f} "
                f"return(recent) {recent:.2f} entropy {ent:.3f} max_prob {mp:.3f}")
        if update % p["checkpoint_every"] == 0 or update == num_updates:
            t0 = time.perf_counter()
            outputs_to_disk()
            save_checkpoint(update, wall_before + time.perf_counter() - t_start)
            timers["checkpoint"] += time.perf_counter() - t0
    env.close()

    # ---------------------------------------------------------------- summary
    ep = np.concatenate(episodes) if episodes else np.zeros((0, 3))
    last_eval = eval_rows[-1] if eval_rows else None
    sps = np.array([r["sps"] for r in update_rows])
    step_counts = np.diff([0] + [r["global_step"] for r in update_rows])
    wall = wall_before + time.perf_counter() - t_start
    summary = {
        **meta,
        "global_step": global_step,
        "updates": len(update_rows),
        "frames": global_step * env_cfg.get("frameskip", 1),
        "final_return_mean_100": float(ep[-100:, 1].mean()) if len(ep) else None,
        "final_eval_return_mean": float(last_eval[:, 1].mean()) if last_eval is not None
        and len(last_eval) else None,
        "episodes": int(len(ep)),
        "wall_time_s": wall,
        "mean_sps": float(step_counts.sum() / (step_counts / sps).sum()) if len(sps) else None,
        "time_breakdown_s": timers,
        "env_spec": env.spec,
        "run_info": run_info(device),
    }
    io.write_json(out / "summary.json", summary)
    log(f"finished {out}: {global_step} steps, {len(ep)} episodes, "
        f"final_return_mean_100 {summary['final_return_mean_100']}")
    return summary
