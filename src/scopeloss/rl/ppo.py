"""PPO (Schulman et al. 2017) with any registered policy loss, CleanRL-style, in phases.

``train`` asks the run lifecycle (``scopeloss.lifecycle.begin``) what to do with the run
directory: skip a finished run, rebuild its outputs from the final checkpoint, resume a
matching checkpoint, or start afresh. A run (``PPORun``) then repeats three phases per
update: **rollout** (``scopeloss.rl.rollout.collect``: act in the batched env under
``torch.inference_mode``), **advantages** (``rollout.advantages``: GAE, flattened into one
``Batch``), **update** (``scopeloss.rl.update.update``: epochs of minibatch steps with the
policy loss chosen by name). The learning rate follows ``scopeloss.schedules`` (linear
annealing to 0 with ``anneal_lr``, else constant).

Outputs (docs/CONTRACT.md; ``scopeloss.rl.outputs``) come from a state that the checkpoint
holds; they are written atomically at every checkpoint and, after the loop, from the final
checkpoint's state. Run settings (device, threads, compile, checkpoint cadence) are not
part of a run's identity.

Resume accounting: the checkpoint holds the episode tracker's partial returns and lengths.
A resumed job's envs start new episodes, so the episodes in flight at the checkpoint are
logged as rows with ``truncated_by_resume`` 1 and every resume is recorded in
summary.json (``resumes``): the lengths of all rows plus the steps in flight at the end
(``in_flight_steps``) sum to ``global_step``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from scopeloss import lifecycle, seeding
from scopeloss.cells import RLCell
from scopeloss.devices import (bf16_autocast, keep_freed_memory, resolve_device,
                               use_fast_cuda_kernels)
from scopeloss.fingerprint import cell_fingerprint
from scopeloss.losses import board_tag
from scopeloss.devices import compile_mode
from scopeloss.config_keys import check_seed
from scopeloss.progress import RunLogger
from scopeloss.rl import rollout as ro
from scopeloss.rl.bookkeeping import EpisodeTracker, make_reward_transform
from scopeloss.rl.config import resolve_run
from scopeloss.rl.envs import derive_seed, make_env, make_eval_env
from scopeloss.rl.networks import make_network
from scopeloss.rl.outputs import output_names, write_finished, write_outputs
from scopeloss.rl.update import update
from scopeloss.runinfo import run_info
from scopeloss.params import RLRunConfig
from scopeloss.schedules import make_schedule

TIMERS = ("env", "policy", "update", "eval", "checkpoint")


def train(cell: RLCell, *, seed: int, out: str | Path,
          run: RLRunConfig | dict[str, Any] | None = None,
          log: Callable[[str], None] = lifecycle.log) -> dict[str, Any]:
    """Run (or resume, rebuild the outputs of, or skip if finished) one PPO job of ``cell``;
    returns its summary. ``run`` holds the run settings: resolved ones (an ``RLRunConfig``,
    as the CLI passes) are used as they are, a mapping or None is resolved first
    (``scopeloss.rl.config.resolve_run``). The run directory is held exclusively throughout
    (``lifecycle.own_run_dir``)."""
    check_seed(seed)
    out = lifecycle.check_out_dir(out)
    settings = run if isinstance(run, RLRunConfig) else RLRunConfig.from_mapping(
        resolve_run(cell, run), "run")
    identity = {**cell.names, "seed": seed, "total_steps": cell.ppo.total_steps,
                "hparams": cell.to_json(),
                "code_fingerprint": cell_fingerprint("rl", cell.loss.loss)}
    ckpt_path = lifecycle.layout(out, "rl").checkpoint
    with lifecycle.own_run_dir(out):
        action, found = lifecycle.begin(out, identity, output_names(cell.env), ckpt_path,
                                        {"update": int, "state": dict}, log)
        if action == "skip":
            return found
        if action == "rebuild":
            try:
                with lifecycle.restoring("rebuilding the outputs"):
                    return write_finished(out, cell.env, found["state"], identity)
            except lifecycle.CorruptCheckpoint as exc:
                lifecycle.quarantine(ckpt_path, str(exc), log)
                found = None
        return lifecycle.resume_or_afresh(
            lambda ckpt: PPORun(cell, seed, out, settings, identity=identity, log=log).train(ckpt),
            found, ckpt_path, log)


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


@dataclass
class RunState:
    """Everything a PPO job has done so far, in one object created with the run: counters,
    logs, timers and where it runs. ``snapshot`` is what a checkpoint holds and the outputs
    are written from; ``saved`` is the last one written (the final outputs come from it, so
    a rebuild from the final checkpoint writes the same files)."""

    run_settings: dict[str, Any]
    global_step: int = 0
    wall_time_s: float = 0.0
    updates: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    timers: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMERS, 0.0))
    env_spec: dict[str, Any] | None = None
    run_info: dict[str, Any] | None = None
    episodes: list[np.ndarray] = field(
        default_factory=lambda: [np.zeros((0, EpisodeTracker.COLUMNS))])
    eval_rows: list[np.ndarray] = field(default_factory=lambda: [np.zeros((0, 3))])
    saved: dict[str, Any] | None = None

    # the checkpoint's "state" keys, as every checkpoint of this format has them
    COUNTERS = ("global_step", "wall_time_s", "updates", "resumes", "timers", "env_spec")

    def snapshot(self, wall_time_s: float, tracker: EpisodeTracker) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self.COUNTERS}, "wall_time_s": wall_time_s,
                "run_settings": self.run_settings, "run_info": self.run_info,
                "episodes": np.concatenate(self.episodes), "eval": np.concatenate(self.eval_rows),
                "tracker": tracker.state_dict()}

    def restore(self, saved: dict[str, Any]) -> None:
        for key in self.COUNTERS:
            setattr(self, key, saved[key])
        self.episodes, self.eval_rows = [saved["episodes"]], [saved["eval"]]


class PPORun:
    """One PPO job from set-up to its outputs: ``train(checkpoint or None)``."""

    def __init__(self, cell: RLCell, seed: int, out: Path, run: RLRunConfig,
                 *, identity: dict[str, Any], log: Callable[[str], None]):
        self.env_cfg, self.cfg = cell.env, cell.ppo
        self.run = run
        # resolve_run filled every null: the thread count and the cadence are numbers
        assert run.torch_threads is not None and run.checkpoint_every is not None
        self.threads, self.checkpoint_every = run.torch_threads, run.checkpoint_every
        self.loss = cell.loss.bind()  # the cell's registered loss, with its own state
        self.seed = seed
        self.out, self.identity, self.log = out, identity, log
        self.ckpt_path = lifecycle.layout(out, "rl").checkpoint
        self.num_updates = math.ceil(self.cfg.total_steps / self.cfg.batch_size)
        self.state = RunState(run_settings=asdict(run))
        self.device = resolve_device(self.run.device, "run.device")
        torch.set_num_threads(self.threads)
        if self.device.type == "cpu" and self.run.keep_freed_memory:
            keep_freed_memory()
        seeding.seed_everything(seed)
        use_fast_cuda_kernels(self.device)
        self.autocast = bf16_autocast(self.device, self.cfg.bf16)

    # ------------------------------------------------------------------ set-up
    def build(self, start_update: int) -> None:
        """Env, network, optimiser, schedule and bookkeeping (in this order: the seeded RNG
        streams depend on it)."""
        p, N = self.cfg, self.cfg.num_envs
        # Env seeds from SeedSequence(seed): disjoint across run seeds; a resumed job's envs
        # start new episodes with their own stream.
        self.env_seed = derive_seed(self.seed, 0, start_update)
        self.env = make_env(self.env_cfg, N, self.env_seed, self.run.env_threads)
        env = self.env
        image = len(env.obs_shape) == 3
        self.agent = make_network(env.obs_shape, env.num_actions, image=image, hwc=env.hwc,
                                  network=env.network).to(self.device)
        if image:
            self.agent = self.agent.to(memory_format=torch.channels_last)
        # fused: one kernel for every parameter (about a third of plain Adam's time on a CPU)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=p.lr, eps=1e-5, fused=True)
        self.schedule = make_schedule(self.optimizer, "linear" if p.anneal_lr else "constant",
                                      self.num_updates)
        self.reward_tf = make_reward_transform(self.env_cfg, N, p.gamma)
        self.tracker = EpisodeTracker(N)
        # torch.compile only sees static shapes: the rollout batch (N) and the minibatches of
        # a full rollout. Other batches (final obs of truncated envs, a short last rollout's
        # minibatches, evaluation) run the eager module: no recompiles, no silent fallback.
        mode = compile_mode(self.run.compile)
        self.compiled = torch.compile(self.agent, dynamic=False, mode=mode) if mode else None
        self.static_sizes = {N, *(len(c) for c in torch.arange(p.batch_size).tensor_split(
            min(p.num_minibatches, p.batch_size)))}
        self.acting = ro.Acting(self.policy, env, self.reward_tf, self.tracker, self.autocast)
        self.state.env_spec, self.state.run_info = env.spec, run_info(self.device)

    def policy(self, x: torch.Tensor):
        if self.compiled is not None and x.shape[0] in self.static_sizes:
            return self.compiled(x)
        return self.agent(x)

    def restore(self, ckpt: dict[str, Any], start_update: int) -> None:
        """Weights, optimiser, schedule, RNG and the state of a resumed run; the episodes in
        flight at the checkpoint end here, flagged (its envs restart)."""
        self.agent.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.reward_tf.load_state_dict(ckpt["reward_transform"])
        seeding.set_rng_state(ckpt["rng"])
        self.loss.load_state_dict(ckpt.get("loss_state"), self.device)
        if not 1 <= ckpt["update"] < self.num_updates:
            raise ValueError(f"update {ckpt['update']} of a run of {self.num_updates} updates "
                             "that is not finished")
        st = self.state
        st.restore(ckpt["state"])
        self.tracker.load_state_dict(ckpt["state"]["tracker"])
        cut = self.tracker.cut(st.global_step)
        st.episodes.append(cut)
        st.resumes.append({"update": start_update, "global_step": st.global_step,
                           "episodes_cut": int(len(cut)), "steps_cut": int(cut[:, 2].sum()),
                           "env_seed": self.env_seed})
        self.log(f"resuming {self.out} at update {start_update}/{self.num_updates}, step "
                 f"{st.global_step} ({len(cut)} episodes in flight cut, logged with "
                 "truncated_by_resume=1)")

    # ------------------------------------------------------------------ the loop
    def train(self, ckpt: dict[str, Any] | None) -> dict[str, Any]:
        start = ckpt["update"] + 1 if ckpt else 1
        self.build(start)
        if ckpt:
            try:
                with lifecycle.restoring():
                    self.restore(ckpt, start)
            except lifecycle.CorruptCheckpoint:
                self.env.close()  # the fresh run that follows builds its own
                raise
        p, env, st = self.cfg, self.env, self.state
        obs_dtype = torch.from_numpy(np.zeros(0, dtype=env.obs_dtype)).dtype
        self.rollout = ro.Rollout(p.num_steps, p.num_envs, env.obs_shape, obs_dtype,
                                  self.device)
        # Live view: TensorBoard scalars under DIR/tb (a resumed run drops the points an
        # interrupted attempt wrote past its checkpoint) and a progress line with an ETA.
        self.board = RunLogger(self.out, enabled=self.run.tensorboard, total=self.num_updates,
                               unit="update", start=start - 1,
                               resume_step=st.global_step if ckpt else None, emit=self.log)
        self.t_start, self.wall_before = time.perf_counter(), st.wall_time_s
        self.rollout.copy_obs(self.rollout.obs[0], env.reset())
        self.checkpointed = start - 1
        try:  # Ctrl-C / SIGTERM: stop after the update in progress, checkpointed
            with lifecycle.StopRequests("update", self.log) as stop:
                for k in range(start, self.num_updates + 1):
                    self.one_update(k)
                    stop.check(k, None if self.checkpointed == k else
                               lambda: self.checkpoint(k))
        except lifecycle.LossFailure as exc:
            where = lifecycle.last_good("update", self.checkpointed, self.ckpt_path)
            raise lifecycle.LossFailure(f"{exc}; {where}") from None
        finally:
            env.close()
            self.board.close()
        # The final checkpoint's state: a rebuild from that checkpoint writes the same outputs.
        assert st.saved is not None  # the last update always checkpoints
        summary = write_finished(self.out, self.env_cfg, st.saved, self.identity)
        self.log(f"finished {self.out}: {st.global_step} steps, {summary['episodes']} "
                 f"episodes, final_return_mean_100 {summary['final_return_mean_100']}")
        return summary

    def one_update(self, k: int) -> None:
        """Rollout, advantages, update; then record, evaluate (Procgen) and checkpoint."""
        p, N, st, timers = self.cfg, self.cfg.num_envs, self.state, self.state.timers
        t_update = time.perf_counter()
        logged_before = len(st.episodes)
        steps = min(p.num_steps, (p.total_steps - st.global_step) // N)  # last may be short
        lr = self.optimizer.param_groups[0]["lr"]
        progress = st.global_step / p.total_steps
        st.global_step, finished = ro.collect(self.rollout, steps, self.acting, gamma=p.gamma,
                                              global_step=st.global_step, timers=timers)
        st.episodes.extend(finished)
        t_learn = time.perf_counter()
        batch = ro.advantages(self.rollout, p.gamma, p.gae_lambda)
        stats = update(self.agent, self.policy, self.optimizer, batch, p, self.loss,
                       autocast=self.autocast, num_actions=self.env.num_actions, update_index=k,
                       progress=progress)
        self.schedule.step()
        timers["update"] += time.perf_counter() - t_learn
        dt = time.perf_counter() - t_update
        st.updates.append({"update": k, "global_step": st.global_step, **stats, "lr": lr,
                           "sps": steps * N / dt})
        self.rollout.carry_over()
        if p.eval_every and self.env_cfg.traits.held_out and (
                k % p.eval_every == 0 or k == self.num_updates):
            self.evaluate_held_out(k)
        self.report(k, steps * N / dt, np.concatenate(st.episodes[logged_before:]
                                                       or [np.zeros((0, 5))]))
        if k % self.checkpoint_every == 0 or k == self.num_updates:
            self.checkpoint(k)

    def report(self, k: int, sps: float, new_episodes: np.ndarray) -> None:
        """TensorBoard scalars of this update and the progress line."""
        row, step = self.state.updates[-1], self.state.global_step
        self.board.scalars(step, {board_tag(key): v for key, v in row.items()
                                  if key not in ("update", "global_step", "sps")})
        has = len(new_episodes) > 0
        self.board.scalars(step, {
            "perf/sps": sps,
            "episode/return": new_episodes[:, 1].mean() if has else float("nan"),
            "episode/length": new_episodes[:, 2].mean() if has else float("nan")})
        done_rows = [e for e in self.state.episodes[-20:] if len(e)]
        recent = np.concatenate(done_rows)[:, 1].mean() if done_rows else float("nan")
        self.board.progress(k, step, sps=round(sps), return_recent=recent,
                            entropy=row["entropy"], max_prob=row["max_prob"])

    def evaluate_held_out(self, k: int) -> None:
        t0, step = time.perf_counter(), self.state.global_step
        eval_env = make_eval_env(self.env_cfg, self.cfg.eval_episodes,
                                 derive_seed(self.seed, 1, k), self.run.env_threads)
        assert eval_env is not None  # called only where the suite has held-out levels
        result = evaluate(self.agent, eval_env, self.device, self.autocast)
        eval_env.close()
        self.state.eval_rows.append(np.column_stack([np.full(len(result), step), result]))
        self.state.timers["eval"] += time.perf_counter() - t0
        self.board.scalars(step, {"eval/return": result[:, 0].mean()})
        self.log(f"eval at step {step}: mean return {result[:, 0].mean():.2f} "
                 f"over {len(result)} held-out episodes")

    def checkpoint(self, k: int) -> None:
        """Write the checkpoint (and, before the end, the outputs so far) from one snapshot."""
        t0 = time.perf_counter()
        wall = self.wall_before + time.perf_counter() - self.t_start
        snapshot = self.state.snapshot(wall, self.tracker)
        done = k == self.num_updates
        # A finished run keeps the final weights and what a rebuild of its outputs reads
        # (the state); not the optimiser, schedule and RNG (2/3 of the checkpoint).
        training = {} if done else {
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "reward_transform": self.reward_tf.state_dict(), "rng": seeding.rng_state(),
            "loss_state": self.loss.state_dict()}
        lifecycle.save_checkpoint(self.ckpt_path, {
            "identity": self.identity, "finished": done, "update": k,
            "model": self.agent.state_dict(), **training, "state": snapshot})
        self.state.saved = snapshot
        if not done:  # the final outputs are written after the loop
            write_outputs(self.out, self.env_cfg, snapshot)
        self.checkpointed = k
        self.state.timers["checkpoint"] += time.perf_counter() - t0
