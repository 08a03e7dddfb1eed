"""The CPU path's memory tax: one IMPALA CNN minibatch update (forward + backward + Adam),
with glibc left alone vs told to keep freed memory (``scopeloss.devices.keep_freed_memory``,
the trainers' default on CPU: ``run.keep_freed_memory``).

    python benchmarks/memory_tax.py [--batch 512] [--updates 8] [--threads 1]
        [--obs 64 64 3]   # StarPilot's; Atari: --obs 4 84 84 (channels first)

Each mode runs in a fresh process (malloc's settings are per process). Prints one JSON
object: seconds per update (median and range over ``--updates`` after one warm-up) and the
process's peak memory (max RSS) per mode, and the speed-up.

    python benchmarks/memory_tax.py --trainers [--envs Breakout StarPilot]

runs the trainers' own benchmarks instead, each with glibc left alone and with the default
(``run.keep_freed_memory: true``), each in its own process, and prints their JSON/lines with
the process's max RSS: ``benchmarks/rl_throughput.py --envs ENV --updates 1`` per env and
``benchmarks/classify_throughput.py`` (ResNet101, 256 -> 224 px, batch 4, 3 steps).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def measure(batch: int, updates: int, threads: int, obs: list[int], keep: bool) -> dict:
    import torch

    from scopeloss.devices import keep_freed_memory
    from scopeloss.rl.networks import make_network

    if keep:
        assert keep_freed_memory()
    torch.set_num_threads(threads)
    hwc = obs[-1] == 3
    net = make_network(tuple(obs), 15, image=True, hwc=hwc).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-5, fused=True)
    x = torch.randint(0, 255, (batch, *obs), dtype=torch.uint8)
    actions = torch.randint(0, 15, (batch,))
    times = []
    for i in range(updates + 1):
        t0 = time.perf_counter()
        logits, value = net(x)
        loss = torch.nn.functional.cross_entropy(logits, actions) + value.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first one warms up
            times.append(time.perf_counter() - t0)
    return {"s_per_update_median": statistics.median(times), "s_min": min(times),
            "s_max": max(times),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(cmd: list[str]) -> tuple[str, float]:
    """Run one benchmark process; its stdout and its own max RSS in MB (from wait4)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}")
    return out, usage.ru_maxrss / 1024


def trainers(envs: list[str]) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    out: dict = {}
    for env in envs:
        for mode, extra in (("default", ["--set", "run.keep_freed_memory=false"]), ("keep", [])):
            text, rss = run_child([sys.executable, os.path.join(here, "rl_throughput.py"),
                                   "--envs", env, "--updates", "1", "--device", "cpu", *extra])
            entry = json.loads(text)["envs"][env]
            out.setdefault(env, {})[mode] = {
                "update_s": entry["breakdown_s"]["update"], "train_sps": entry["train_sps"],
                "rollout_sps": entry["rollout_sps"], "max_rss_mb": rss}
        out[env]["update_speedup"] = out[env]["default"]["update_s"] / out[env]["keep"]["update_s"]
        out[env]["train_speedup"] = out[env]["keep"]["train_sps"] / out[env]["default"]["train_sps"]
    for mode, extra in (("default", ["--no-keep-freed-memory"]), ("keep", [])):
        text, rss = run_child([sys.executable, os.path.join(here, "classify_throughput.py"),
                               "--device", "cpu", *extra])
        out.setdefault("classifier", {})[mode] = {"line": text.strip(), "max_rss_mb": rss}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--updates", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--obs", type=int, nargs=3, default=[64, 64, 3])
    p.add_argument("--trainers", action="store_true",
                   help="the trainers' own benchmarks with and without, instead")
    p.add_argument("--envs", nargs="+", default=["Breakout", "StarPilot"])
    p.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.trainers:
        print(json.dumps(trainers(a.envs), indent=2))
        return
    if a.child:
        print(json.dumps(measure(a.batch, a.updates, a.threads, a.obs, a.child == "keep")))
        return
    out = {"batch": a.batch, "obs": a.obs, "threads": a.threads, "updates": a.updates}
    for mode in ("default", "keep"):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--batch", str(a.batch),
                               "--updates", str(a.updates), "--threads", str(a.threads),
                               "--obs", *map(str, a.obs)], capture_output=True, text=True,
                              check=True)
        out[mode] = json.loads(proc.stdout)
    out["speedup"] = out["default"]["s_per_update_median"] / out["keep"]["s_per_update_median"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
