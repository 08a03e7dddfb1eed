"""RL throughput at the config's settings: agent steps per second for
(a) env stepping alone (random actions), (b) rollout collection (env + policy forward,
sampling, bookkeeping and obs copy, from the training loop's own timers), and (c) the full
training loop (rollout + GAE + minibatch updates), with a breakdown of where time goes.

    python benchmarks/rl_throughput.py [--envs Breakout StarPilot MinAtarBreakout] [--updates 1]
        [--env-steps 200] [--device auto] [--set ppo.key=value | run.key=value ...]

Prints one JSON object. Held-out evaluation is switched off so that (c) is training alone.
MinAtar games (MinAtarBreakout, MinAtarAsterix, ...) run N pure-Python games in one loop:
there (a) measures that loop and (b)-(c) the MinAtar network on the CPU (suite default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch

from scopeloss.devices import resolve_device
from scopeloss.overrides import parse_set
from scopeloss.rl.config import RLCell, resolve, resolve_run
from scopeloss.rl.envs import make_env
from scopeloss.rl.ppo import train
from scopeloss.runinfo import run_info


def env_only(cfg, num_envs: int, vector_steps: int, threads: int | None = None,
             seed: int = 0) -> dict:
    env = make_env(cfg, num_envs, seed, threads)
    env.reset()
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, env.num_actions, size=(vector_steps, num_envs))
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    dt = time.perf_counter() - t0
    env.close()
    return {"agent_steps": vector_steps * num_envs, "seconds": dt,
            "sps": vector_steps * num_envs / dt}


def training(cell: RLCell, run: dict, updates: int) -> dict:
    steps = updates * cell.ppo.batch_size
    cell = replace(cell, ppo=replace(cell.ppo, total_steps=steps, eval_every=0))
    run = {**run, "checkpoint_every": updates + 1}  # only the final checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(cell, seed=0, out=tmp, run=run, log=lambda _: None)
    timers = summary["time_breakdown_s"]
    rollout_s = timers["env"] + timers["policy"]
    loop_s = rollout_s + timers["update"]
    return {
        "updates": updates, "agent_steps": steps,
        "rollout_sps": steps / rollout_s,
        "train_sps": summary["mean_sps"],
        "breakdown_s": {k: round(v, 3) for k, v in timers.items()},
        "breakdown_fraction": {k: round(timers[k] / loop_s, 3) for k in ("env", "policy", "update")},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=["Breakout", "StarPilot", "MinAtarBreakout"])
    ap.add_argument("--updates", type=int, default=1, help="training updates to time per env")
    ap.add_argument("--env-steps", type=int, default=200, help="vector steps for env-only timing")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = ap.parse_args(argv)

    device = resolve_device(args.device, "--device")
    result = {"device": run_info(device)["device_name"], "envs": {}}
    for name in args.envs:
        sets = parse_set(args.set)
        run_sets = sets.pop("run", {})
        cell = resolve(name, "scope", sets)
        run = resolve_run(cell, {"device": args.device, **run_sets})
        p = cell.ppo
        entry = {"num_envs": p.num_envs, "num_steps": p.num_steps,
                 "update_epochs": p.update_epochs, "num_minibatches": p.num_minibatches,
                 "env_only": env_only(cell.env, p.num_envs, args.env_steps,
                                      run["env_threads"])}
        entry.update(training(cell, run, args.updates))
        entry["torch_threads"] = torch.get_num_threads()  # as set by run.torch_threads
        entry["env_threads"] = run["env_threads"]
        result["envs"][name] = entry
        print(f"{name}: done", file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
