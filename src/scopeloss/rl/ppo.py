"""PPO (Schulman et al. 2017) with the paper's four policy losses, CleanRL-style.

One function, ``train``, holds the whole loop: collect a rollout under
``torch.inference_mode`` (no per-env Python loop: the env is batched, observations are
copied once into a preallocated uint8 buffer on the device), GAE, then a few epochs of
minibatch updates with per-minibatch z-score advantage normalisation (eq. 9), the policy
loss ``scopeloss.losses.ppo_policy_loss`` chosen by name, CleanRL's clipped value loss
weighted by ``vf_coef``, global gradient-norm clipping and Adam.

Outputs (docs/CONTRACT.md) are accumulated in a state that the checkpoint holds; they are
written atomically at every checkpoint and, after the loop, from that state. A job's
lifecycle (``train``): (1) finished with every output present: skip; (2) finished but an
output missing: rebuild every output from the final checkpoint, no training; (3) a
checkpoint with the same identity (env, loss, seed, resolved hyperparameters, code
fingerprint): resume; (4) otherwise start afresh. Run settings (device, threads, compile,
checkpoint cadence) are not part of the identity.

Resume accounting: the checkpoint holds the episode tracker's partial returns and lengths.
A resumed job's envs start new episodes, so the episodes in flight at the checkpoint are
logged as rows with ``truncated_by_resume`` 1 and every resume is recorded in
summary.json (``resumes``): the lengths of all rows plus the steps in flight at the end
(``in_flight_steps``) sum to ``global_step``.
"""

from __future__ import annotations

import io as _bytes_io
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
from scopeloss.fingerprint import TRAINERS, code_fingerprint
from scopeloss.lifecycle import own_run_dir
from scopeloss.losses import check_index_range, ppo_policy_loss
from scopeloss.rl.config import resolve_run
from scopeloss.rl.envs import (EpisodeTracker, derive_seed, make_env, make_eval_env,
                               make_reward_transform)
from scopeloss.progress import RunLogger
from scopeloss.rl.networks import make_network
from scopeloss.runinfo import run_info

EPISODE_COLUMNS = ["global_step", "return", "length", "truncated_by_resume"]
EVAL_COLUMNS = ["global_step", "return", "length"]
UPDATE_COLUMNS = ["update", "global_step", "policy_loss", "value_loss", "entropy", "approx_kl",
                  "clipfrac", "max_prob", "lr", "sps"]
CKPT_NAME = "checkpoint.pt"
MAX_SEED = 2**32 - 1
TIMERS = ("env", "policy", "update", "eval", "checkpoint")


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")


def output_names(env_cfg: dict[str, Any]) -> list[str]:
    names = ["episodes.csv", "updates.csv", "summary.json"]
    return names + ["eval.csv"] if env_cfg["suite"] == "procgen" else names


def finished_summary(out: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a completed run with the same identity (env, loss, seed, hparams, code
    fingerprint), else None."""
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


def save_checkpoint_file(path: Path, obj: dict[str, Any]) -> None:
    """Serialise in memory, then write atomically with plain file I/O, so that a failed write
    (a full disk, a quota) is an OSError naming ``path`` and the OS error, not torch's
    ``enforce fail at inline_container.cc``."""
    buffer = _bytes_io.BytesIO()
    torch.save(obj, buffer)
    try:
        with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())
    except OSError as exc:
        raise OSError(exc.errno, f"could not write checkpoint {path}: "
                                 f"{exc.strerror or exc}") from exc


def _episode_frame(rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(rows[:, :4], columns=EPISODE_COLUMNS).astype(
        {"global_step": "int64", "length": "int64", "truncated_by_resume": "int64"})


def write_outputs(out: Path, env_cfg: dict[str, Any], st: dict[str, Any],
                  meta: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Write episodes.csv, updates.csv (and eval.csv for procgen) from the state ``st``; with
    ``meta`` (a finished run) also summary.json, which is returned."""
    io.write_csv(out / "episodes.csv", _episode_frame(st["episodes"]))
    io.write_csv(out / "updates.csv", pd.DataFrame(st["updates"], columns=UPDATE_COLUMNS))
    if env_cfg["suite"] == "procgen":
        io.write_csv(out / "eval.csv", pd.DataFrame(st["eval"], columns=EVAL_COLUMNS).astype(
            {"global_step": "int64", "length": "int64"}))
    if meta is None:
        return None
    summary = make_summary(meta, env_cfg, st)
    io.write_json(out / "summary.json", summary)
    return summary


def make_summary(meta: dict[str, Any], env_cfg: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
    ep = st["episodes"]
    whole = ep[ep[:, 3] == 0]  # episodes that ended in the game, not by a resume
    last_eval = st["eval"][st["eval"][:, 0] == st["eval"][-1, 0]] if len(st["eval"]) else None
    sps = np.array([r["sps"] for r in st["updates"]])
    step_counts = np.diff([0] + [r["global_step"] for r in st["updates"]])
    in_flight = int(np.asarray(st["tracker"]["len"]).sum())
    return {
        **meta,
        "global_step": st["global_step"],
        "updates": len(st["updates"]),
        "frames": st["global_step"] * env_cfg.get("frameskip", 1),
        "final_return_mean_100": float(whole[-100:, 1].mean()) if len(whole) else None,
        "final_eval_return_mean": float(last_eval[:, 1].mean()) if last_eval is not None
        and len(last_eval) else None,
        "episodes": int(len(ep)),
        "episodes_cut_by_resume": int(len(ep) - len(whole)),
        # Episodes that hit the env's step limit (Atari: max_episode_steps), of those that ended.
        "truncated_share": float(whole[:, 4].mean()) if len(whole) else None,
        "in_flight_steps": in_flight,
        "resumes": st["resumes"],
        "wall_time_s": st["wall_time_s"],
        "mean_sps": float(step_counts.sum() / (step_counts / sps).sum()) if len(sps) else None,
        "time_breakdown_s": st["timers"],
        "env_spec": st["env_spec"],
        "run_settings": st["run_settings"],
        "run_info": st["run_info"],
    }


def train(hp: dict[str, Any], *, env_name: str, loss: str, seed: int, out_dir: str | Path,
          run: dict[str, Any] | None = None, log=print) -> dict[str, Any]:
    """Run (or resume, rebuild the outputs of, or skip if finished) one PPO job; returns its
    summary. ``run`` holds the run settings (``scopeloss.rl.config.resolve_run``). The run
    directory is held exclusively throughout (``lifecycle.own_run_dir``)."""
    out = Path(out_dir)
    check_out_dir(out)
    with own_run_dir(out):
        return _train(hp, env_name=env_name, loss=loss, seed=seed, out=out, run=run, log=log)


def _train(hp: dict[str, Any], *, env_name: str, loss: str, seed: int, out: Path,
           run: dict[str, Any] | None, log) -> dict[str, Any]:
    if not (isinstance(seed, int) and 0 <= seed <= MAX_SEED):
        raise ValueError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
    run = resolve_run(hp, run)
    env_cfg, p, alpha = hp["env"], hp["ppo"], hp["loss"]["alpha"]
    meta = {"env": env_name, "loss": loss, "seed": seed, "total_steps": p["total_steps"],
            "hparams": hp, "code_fingerprint": code_fingerprint(TRAINERS["rl"])}
    N, T = p["num_envs"], p["num_steps"]
    batch = N * T
    num_updates = math.ceil(p["total_steps"] / batch)

    # ---------------------------------------------------------------- lifecycle
    done_summary = finished_summary(out, meta)
    if done_summary is not None and all((out / f).exists() for f in output_names(env_cfg)):
        log(f"{out}: already finished ({p['total_steps']} steps); nothing to do")
        return done_summary
    out.mkdir(parents=True, exist_ok=True)
    io.remove_stale_temporaries(out, log)
    ckpt_path = out / ".ckpt" / CKPT_NAME
    ckpt = io.load_checkpoint(ckpt_path, {"meta": dict, "update": int, "state": dict}, log)
    if ckpt is not None and ckpt["meta"] != meta:
        old = ckpt["meta"].get("code_fingerprint")
        why = ("other code (fingerprint {} -> {})".format(old, meta["code_fingerprint"])
               if old != meta["code_fingerprint"] else "other settings")
        log(f"{ckpt_path}: checkpoint is from {why}; starting afresh")
        ckpt = None
    if ckpt is not None and ckpt["update"] >= num_updates:
        log(f"{out}: finished; rebuilding outputs from the final checkpoint (no training)")
        return write_outputs(out, env_cfg, ckpt["state"], meta)
    # A summary from other settings must not sit beside a run that is not finished.
    (out / "summary.json").unlink(missing_ok=True)

    # ---------------------------------------------------------------- setup
    device = resolve_device(run["device"], "run.device")
    torch.set_num_threads(run["torch_threads"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    use_fast_cuda_kernels(device)
    autocast = bf16_autocast(device, p["bf16"])

    start_update = ckpt["update"] + 1 if ckpt else 1
    # Env seeds from SeedSequence(seed): disjoint across run seeds; a resumed job's envs
    # start new episodes with their own stream.
    env_seed = derive_seed(seed, 0, start_update)
    env = make_env(env_cfg, N, env_seed, run["env_threads"])
    image = len(env.obs_shape) == 3
    agent = make_network(env.obs_shape, env.num_actions, image=image, hwc=env.hwc,
                         network=env.network).to(device)
    if image:
        agent = agent.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(agent.parameters(), lr=p["lr"], eps=1e-5)
    reward_tf = make_reward_transform(env_cfg, N, p["gamma"])
    tracker = EpisodeTracker(N)

    # torch.compile only sees static shapes: the rollout batch (N) and the minibatches of a
    # full rollout. Other batches (final obs of truncated envs, a short last rollout's
    # minibatches, evaluation) run the eager module: no recompiles, no silent fallback.
    compiled = torch.compile(agent, dynamic=False) if run["compile"] else None
    static_sizes = {N, *(len(c) for c in torch.arange(batch).tensor_split(
        min(p["num_minibatches"], batch)))}

    def policy(x: torch.Tensor):
        if compiled is not None and x.shape[0] in static_sizes:
            return compiled(x)
        return agent(x)

    st: dict[str, Any] = {"global_step": 0, "wall_time_s": 0.0, "updates": [], "resumes": [],
                          "timers": dict.fromkeys(TIMERS, 0.0), "env_spec": env.spec,
                          "run_settings": run, "run_info": run_info(device)}
    episodes: list[np.ndarray] = [np.zeros((0, EpisodeTracker.COLUMNS))]
    eval_rows: list[np.ndarray] = [np.zeros((0, 3))]
    if ckpt:
        agent.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        reward_tf.load_state_dict(ckpt["reward_transform"])
        _set_rng_state(ckpt["rng"], device)
        saved = ckpt["state"]
        st.update(global_step=saved["global_step"], wall_time_s=saved["wall_time_s"],
                  updates=saved["updates"], resumes=saved["resumes"], timers=saved["timers"],
                  env_spec=saved["env_spec"])
        episodes, eval_rows = [saved["episodes"]], [saved["eval"]]
        # The envs restart: the episodes in flight at the checkpoint end here, flagged.
        tracker.load_state_dict(saved["tracker"])
        cut = tracker.cut(st["global_step"])
        episodes.append(cut)
        st["resumes"].append({"update": start_update, "global_step": st["global_step"],
                              "episodes_cut": int(len(cut)), "steps_cut": int(cut[:, 2].sum()),
                              "env_seed": env_seed})
        log(f"resuming {out} at update {start_update}/{num_updates}, step {st['global_step']} "
            f"({len(cut)} episodes in flight cut, logged with truncated_by_resume=1)")
    timers = st["timers"]
    global_step, wall_before = st["global_step"], st["wall_time_s"]

    # Rollout storage, preallocated on the device; obs has one extra row for the bootstrap.
    obs_dtype = torch.from_numpy(np.zeros(0, dtype=env.obs_dtype)).dtype
    obs_buf = torch.zeros((T + 1, N, *env.obs_shape), dtype=obs_dtype, device=device)
    actions = torch.zeros((T, N), dtype=torch.long, device=device)
    logprobs = torch.zeros((T, N), device=device)
    values = torch.zeros((T + 1, N), device=device)
    rewards_np = np.zeros((T, N), dtype=np.float32)
    ends_np = np.zeros((T, N), dtype=np.float32)
    pinned = device.type == "cuda"
    # CUDA: two pinned staging buffers, each with an event recorded after its async copy;
    # a buffer is refilled only once the copy that last read it has finished.
    stages = [torch.empty((N, *env.obs_shape), dtype=obs_dtype, pin_memory=True)
              for _ in range(2)] if pinned else []
    copied = [torch.cuda.Event() for _ in range(2)] if pinned else []
    slot = [0]

    def to_device(dst: torch.Tensor, obs: np.ndarray) -> None:
        if not pinned:
            dst.copy_(torch.from_numpy(obs))  # CPU: one copy straight into the buffer
            return
        k = slot[0]
        copied[k].synchronize()  # the previous transfer out of this buffer is done
        stages[k].numpy()[...] = obs  # one host copy into pinned memory ...
        dst.copy_(stages[k], non_blocking=True)  # ... then an async transfer
        copied[k].record()
        slot[0] = 1 - k

    def snapshot(wall: float) -> dict[str, Any]:
        return {**st, "global_step": global_step, "wall_time_s": wall,
                "episodes": np.concatenate(episodes), "eval": np.concatenate(eval_rows),
                "tracker": tracker.state_dict()}

    def save_checkpoint(update: int, state: dict[str, Any]) -> None:
        save_checkpoint_file(ckpt_path, {
            "meta": meta, "update": update, "model": agent.state_dict(),
            "optimizer": optimizer.state_dict(), "reward_transform": reward_tf.state_dict(),
            "rng": _rng_state(device), "state": state})

    def run_eval(update: int) -> None:
        t0 = time.perf_counter()
        eval_env = make_eval_env(env_cfg, p["eval_episodes"], derive_seed(seed, 1, update),
                                 run["env_threads"])
        result = evaluate(agent, eval_env, device, autocast)
        eval_env.close()
        eval_rows.append(np.column_stack([np.full(len(result), global_step), result]))
        timers["eval"] += time.perf_counter() - t0
        board.scalars(global_step, {"eval/return": result[:, 0].mean()})
        log(f"eval at step {global_step}: mean return {result[:, 0].mean():.2f} "
            f"over {len(result)} held-out episodes")

    # Live view: TensorBoard scalars under DIR/tb (a resumed run drops the points an
    # interrupted attempt wrote past its checkpoint) and a progress line with an ETA.
    board = RunLogger(out, enabled=run["tensorboard"], total=num_updates, unit="update",
                      start=start_update - 1, resume_step=global_step if ckpt else None,
                      emit=log)

    # ---------------------------------------------------------------- training loop
    t_start = time.perf_counter()
    to_device(obs_buf[0], env.reset())
    for update in range(start_update, num_updates + 1):
        t_update = time.perf_counter()
        logged_before = len(episodes)
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
                finished = tracker.update(raw, done, global_step, trunc & ~term)
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
        # The actions' range is checked once here, where they enter the update (on CUDA an
        # async device assert), not in every minibatch's loss call.
        check_index_range("actions", b_actions, env.num_actions)

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
                                          clip_coef=p["clip_coef"], alpha=alpha,
                                          check_range=False)
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
        sums = stats.tolist()  # the update's one host sync for its diagnostics
        pg, vl, ent, kl, cf, mp = (x / sums[6] for x in sums[:6])
        if not all(math.isfinite(x) for x in (pg, vl, ent)):
            raise FloatingPointError(f"non-finite loss at update {update}: policy {pg}, value {vl}")
        timers["update"] += time.perf_counter() - t_learn
        dt = time.perf_counter() - t_update
        st["updates"].append({"update": update, "global_step": global_step, "policy_loss": pg,
                              "value_loss": vl, "entropy": ent, "approx_kl": kl, "clipfrac": cf,
                              "max_prob": mp, "lr": lr, "sps": steps * N / dt})
        # Start the next rollout from the last observation.
        obs_buf[0].copy_(obs_buf[steps])

        if p["eval_every"] and env_cfg["suite"] == "procgen" and (
                update % p["eval_every"] == 0 or update == num_updates):
            run_eval(update)
        new_episodes = np.concatenate(episodes[logged_before:] or [np.zeros((0, 5))])
        board.scalars(global_step, {f"train/{k}": v for k, v in st["updates"][-1].items()
                                    if k not in ("update", "global_step", "sps")})
        board.scalars(global_step, {"perf/sps": steps * N / dt,
                                    "episode/return": new_episodes[:, 1].mean()
                                    if len(new_episodes) else float("nan"),
                                    "episode/length": new_episodes[:, 2].mean()
                                    if len(new_episodes) else float("nan")})
        done_rows = [e for e in episodes[-20:] if len(e)]
        recent = np.concatenate(done_rows)[:, 1].mean() if done_rows else float("nan")
        board.progress(update, global_step, sps=round(steps * N / dt), return_recent=recent,
                       entropy=ent, max_prob=mp)
        if update % run["checkpoint_every"] == 0 or update == num_updates:
            t0 = time.perf_counter()
            state = snapshot(wall_before + time.perf_counter() - t_start)
            save_checkpoint(update, state)
            if update < num_updates:  # the final outputs are written after the loop
                write_outputs(out, env_cfg, state)
            timers["checkpoint"] += time.perf_counter() - t0
    env.close()
    board.close()

    # ---------------------------------------------------------------- outputs, from the state
    # The final checkpoint's state: a rebuild from that checkpoint writes the same outputs.
    summary = write_outputs(out, env_cfg, state, meta)
    log(f"finished {out}: {global_step} steps, {summary['episodes']} episodes, "
        f"final_return_mean_100 {summary['final_return_mean_100']}")
    return summary
