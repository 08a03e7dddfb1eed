"""Does stepping several seeds of one cell in one process pay? (issue 21, item 2)

The MinAtar rollout is dispatch-bound (a batch-8 forward costs ~170 us for ~2.7 MFLOP), so
the policy forwards of k seeds could share dispatches: stacked parameters, one vmapped
forward over (k, 8) observations (``torch.func.stack_module_state`` + ``vmap``). The update
is compute-bound (per-sample cost barely falls with batch size), so stacking seeds cannot
cut its cost. This measures, on one thread: the rollout forward for k seeds one by one vs
vmapped, the MinAtar env step for k x 8 games, and the update of one seed; and prints the
loop's bound: k seeds' full loops in one process vs k processes, per core.

    python benchmarks/multi_seed_rollout.py [--seeds 1 3 5]
"""

from __future__ import annotations

import argparse
import copy
import contextlib
import json
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from scopeloss.rl.bookkeeping import EpisodeTracker, make_reward_transform
from scopeloss.rl.config import resolve
from scopeloss.rl.envs import make_env
from scopeloss.rl.networks import make_network
from scopeloss.rl import rollout as ro
from scopeloss.rl.update import update
from scopeloss.losses import BoundLoss


def timeit(fn, n: int) -> float:
    for _ in range(max(3, n // 10)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _rounded(x):
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return round(x, 3) if isinstance(x, float) else x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 3, 5])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cell = resolve("MinAtarBreakout", "scope")
    cfg = cell.ppo
    N, T = cfg.num_envs, cfg.num_steps
    env = make_env(cell.env, N, 0)
    net = make_network(env.obs_shape, env.num_actions, image=True, hwc=True, network=env.network)
    obs1 = torch.from_numpy(env.reset())
    # one seed's whole loop, phase by phase (rollout forward+sampling, env, update)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-5, fused=True)
    r = ro.Rollout(T, N, env.obs_shape, torch.bool, torch.device("cpu"))
    r.copy_obs(r.obs[0], env.reset())
    timers = {"env": 0.0, "policy": 0.0}
    tf, tr, ac = make_reward_transform(cell.env, N, cfg.gamma), EpisodeTracker(N), contextlib.nullcontext()
    acting = ro.Acting(net, env, tf, tr, ac)

    def one_loop():
        ro.collect(r, T, acting, gamma=cfg.gamma, global_step=0, timers=timers)
        update(net, net, opt, ro.advantages(r, cfg.gamma, cfg.gae_lambda), cfg,
               BoundLoss("ppo", "scope", {"alpha": 0.01}), autocast=ac, num_actions=env.num_actions,
               update_index=1)
        r.carry_over()

    timers.update(env=0.0, policy=0.0)
    loop_s = timeit(one_loop, 15)
    env_s, policy_s = timers["env"] / 16.5, timers["policy"] / 16.5  # per loop (warm-up incl.)
    result = {"one_seed_loop_ms": loop_s * 1e3, "of_which_policy_ms": policy_s * 1e3,
              "of_which_env_ms": env_s * 1e3, "seeds": {}}
    for k in args.seeds:
        nets = [copy.deepcopy(net) for _ in range(k)]
        params, buffers = stack_module_state(nets)
        base = copy.deepcopy(net).to("meta")
        obs_k = obs1.expand(k, *obs1.shape).contiguous()

        def call(pr, bu, x):
            return functional_call(base, (pr, bu), (x,))

        batched = vmap(call)
        with torch.inference_mode():
            separate = timeit(lambda: [n(obs_k[i]) for i, n in enumerate(nets)], 300)
            stacked = timeit(lambda: batched(params, buffers, obs_k), 300)
        # per vector step: forwards (separate vs stacked); the rest of a loop scales with k
        saved_per_loop = (separate - stacked) * T
        in_one = k * loop_s - saved_per_loop
        ideal = k * loop_s - (k - 1) * separate / k * T  # k forwards for the price of one
        result["seeds"][k] = {"forward_separate_us": separate * 1e6,
                              "forward_vmapped_us": stacked * 1e6,
                              "loop_speedup_vs_k_processes": k * loop_s / in_one,
                              "loop_speedup_if_stacking_were_free": k * loop_s / ideal}
    print(json.dumps(_rounded(result), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
