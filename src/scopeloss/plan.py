"""The grid's cost before launch: cells by suite/env and dataset/model, estimated wall time
and GPU-hours on G GPUs with K training jobs per GPU.

    python -m scopeloss.plan [--configfile config.yaml presets/x.yaml ...]
        [--gpus G] [--jobs-per-gpu K] [--throughput RATES.yaml | --calibrate [--save-rates F]]

Throughput figures (one job alone on one GPU, or on the CPU for a CPU box) come from a
rates file (YAML or JSON; ``benchmarks/rates/*.yaml``) or from ``--calibrate``, which runs
a few updates of each RL env of the grid through the real trainer
(``python -m scopeloss.rl.train``, the cell's own settings) and a few training steps of
each classifier model (``benchmarks/classify_throughput.py``) on this machine. A rates
file::

    machine: "1x H100, 16 cores"          # free text, printed
    rl: {atari: 2000, procgen: 5000, Breakout: 2100}   # agent steps/s of ONE job; an env
                                                       # name wins over its suite
    classification: {resnet101: 900}      # training images/s of ONE job, by model
    scaling: {1: 1.0, 2: 1.8, 4: 3.1}     # aggregate throughput of K jobs on one GPU,
                                          # in units of one job alone (measured, K -> x)

The arithmetic (tests/test_plan.py checks it by hand):

* an RL cell costs ``total_steps / rate`` seconds (held-out evaluation not counted);
* a classification cell costs ``epochs × (n_train + n_val / 3) / rate + n_test / 3 / rate``
  seconds: every epoch trains on the train split and evaluates the validation split
  (a forward pass ≈ 1/3 of a training step), the test split is evaluated once. Epochs are
  the budget; early stopping can only make it shorter (an upper bound);
* with K jobs per GPU, a GPU's aggregate throughput is ``scaling[K]`` jobs' worth (from
  the rates file; **assumed K when not given — perfect packing, an optimistic bound**),
  so each job runs ``K / scaling[K]`` times longer than alone;
* wall time: the cells, longest first, on G × K slots (longest-processing-time greedy);
  GPU-hours = G × wall time (the machine's GPUs held), job-hours = the sum over cells of
  one job alone.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from scopeloss import grid
from scopeloss import atomic
from scopeloss.classify import sources
from scopeloss.params import DatasetConfig

ROOT = Path(__file__).resolve().parents[2]
EVAL_COST = 1.0 / 3.0  # forward-only image vs a training image


# ----------------------------------------------------------------------------- cells
def dataset_images(spec: Mapping) -> int:
    """Images of a resolved dataset section before the split (its source counts them)."""
    return sources.get(spec["kind"]).image_count(DatasetConfig.of(spec))


def split_sizes(spec: Mapping) -> tuple[int, int, int]:  # a resolved dataset section
    """(train, val, test) image counts; rounding as a stratified split gives about."""
    n = dataset_images(spec)
    val = round(n * float(spec["val_fraction"]))
    test = round(n * float(spec["test_fraction"]))
    return n - val - test, val, test


def cells(config: Mapping) -> list[dict]:
    """One entry per training job of the resolved grid: kind, group, what it costs."""
    out = []
    for env, loss, seed in grid.rl_runs(config):
        cell = grid.rl_cell(config, env, loss)
        out.append({"kind": "rl", "suite": cell["env"]["suite"], "name": env,
                    "units": int(cell["ppo"]["total_steps"]), "unit": "steps",
                    "run": f"rl/{env}/{loss}/seed{seed}"})
    for dataset, experiment, loss, seed in grid.classification_runs(config):
        cell = grid.classification_cell(config, dataset, experiment, loss)
        e, d = cell["experiment"], cell["dataset"]
        train, val, test = split_sizes(d)
        images = int(e["epochs"]) * (train + val * EVAL_COST) + test * EVAL_COST
        out.append({"kind": "classification", "suite": dataset, "name": e["model"],
                    "units": images, "unit": "images",
                    "image_size": int(d["image_size"]), "batch_size": int(e["batch_size"]),
                    "run": f"classification/{dataset}/{experiment}/{loss}/seed{seed}"})
    return out


# ----------------------------------------------------------------------------- rates
def load_rates(path: str | Path) -> dict:
    if not Path(path).is_file():
        raise SystemExit(f"--throughput {path}: no such rates file (measure one: python -m "
                         "scopeloss.plan --calibrate --save-rates FILE)")
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    data.setdefault("rl", {})
    data.setdefault("classification", {})
    data["scaling"] = {int(k): float(v) for k, v in (data.get("scaling") or {}).items()}
    return data


def rate_of(cell: Mapping, rates: Mapping) -> float:
    table = rates["rl"] if cell["kind"] == "rl" else rates["classification"]
    keys = [cell["name"], cell["suite"]] if cell["kind"] == "rl" else \
        [f"{cell['name']}@{cell['image_size']}", cell["name"]]
    for key in keys:
        if key in table and table[key]:
            return float(table[key])
    raise SystemExit(f"scopeloss.plan: no throughput for {cell['kind']} {' / '.join(keys)} "
                     f"in the rates (have: {', '.join(map(str, table)) or 'none'}); "
                     "add it to the rates file or run with --calibrate")


def scaling_of(k: int, rates: Mapping) -> tuple[float, bool]:
    """(aggregate throughput of k jobs on one GPU in units of one job, measured?)."""
    table = rates.get("scaling") or {}
    if k in table:
        return table[k], True
    return float(k), False


# ----------------------------------------------------------------------------- schedule
def makespan(durations: list[float], slots: int) -> float:
    """Longest-processing-time greedy schedule of `durations` on `slots` parallel slots."""
    if not durations:
        return 0.0
    free = [0.0] * max(1, slots)  # when each slot is next free
    for d in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def estimate(config: Mapping, rates: Mapping, gpus: int, k: int) -> dict:
    items = cells(config)
    scale, measured = scaling_of(k, rates)
    slow = k / scale  # each of K jobs on a GPU runs this many times longer than alone
    groups: "OrderedDict[tuple, dict]" = OrderedDict()
    alone, packed = [], []
    for c in items:
        seconds = c["units"] / rate_of(c, rates)
        alone.append(seconds)
        packed.append(seconds * slow)
        g = groups.setdefault((c["kind"], c["suite"], c["name"]), {
            "kind": c["kind"], "suite": c["suite"], "name": c["name"], "cells": 0,
            "units_per_cell": c["units"], "unit": c["unit"], "rate": rate_of(c, rates),
            "job_hours": 0.0})
        g["cells"] += 1
        g["job_hours"] += seconds / 3600
    wall = makespan(packed, gpus * k)
    return {"groups": list(groups.values()), "cells": len(items),
            "job_hours": sum(alone) / 3600, "wall_hours": wall / 3600,
            "gpu_hours": gpus * wall / 3600, "gpus": gpus, "jobs_per_gpu": k,
            "scaling": scale, "scaling_measured": measured}


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.3g}"


def report(est: Mapping, *, configs: list[str], rates_source: str, machine: str) -> str:
    k, g = est["jobs_per_gpu"], est["gpus"]
    width = max([15, *(len(r["suite"]) + 2 for r in est["groups"])])  # long dataset names
    lines = [f"Cost plan of {' + '.join(configs)}",
             f"throughput: {rates_source}" + (f" ({machine})" if machine else ""),
             f"{g} GPU(s) x {k} job(s) per GPU = {g * k} training jobs at once; "
             f"aggregate throughput of {k} job(s) on one GPU = {est['scaling']:.3g} x one job "
             + ("(measured)" if est["scaling_measured"] else
                "(ASSUMED: perfect packing, an optimistic bound; measure it, then give "
                "`scaling:` in the rates file)"),
             "",
             f"{'kind':<15}{'suite/dataset':<{width}}{'env/model':<18}{'cells':>6}"
             f"{'per cell':>22}{'one job':>18}{'h/cell':>9}{'job-h':>10}"]
    for r in est["groups"]:
        per = f"{_num(r['units_per_cell'])} {r['unit']}"
        rate = f"{_num(r['rate'])} {r['unit']}/s"
        lines.append(f"{r['kind']:<15}{r['suite']:<{width}}{r['name']:<18}{r['cells']:>6}"
                     f"{per:>22}{rate:>18}{r['job_hours'] / r['cells']:>9.2f}"
                     f"{r['job_hours']:>10.1f}")
    days = est["wall_hours"] / 24
    lines += ["",
              f"{est['cells']} training jobs, {est['job_hours']:,.1f} job-hours (each alone on a GPU)",
              f"estimated wall time {est['wall_hours']:,.1f} h ({days:.1f} days), "
              f"{est['gpu_hours']:,.1f} GPU-hours (G x wall) on {g} GPU(s) with K={k}",
              "not counted: held-out RL evaluation, data fetch/cache build, aggregation and "
              "figures; classification epochs are the budget (early stopping only shortens)"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- disk
FLOAT = 4  # bytes per float32 weight
LOG_BYTES_PER_UPDATE = 600  # updates.csv + its copy in the checkpoint, per PPO update


@lru_cache(maxsize=None)
def rl_weights(env_json: str) -> int:
    """Float32 bytes of the network an RL cell trains (its env built once to learn the
    observation and action shapes, as the trainer does)."""
    from scopeloss.rl.envs import make_env
    from scopeloss.rl.networks import make_network

    env = make_env(json.loads(env_json), 1, 0)
    try:
        net = make_network(env.obs_shape, env.num_actions, image=len(env.obs_shape) == 3,
                           hwc=env.hwc, network=env.network)
    finally:
        env.close()
    return FLOAT * sum(p.numel() for p in net.parameters())


@lru_cache(maxsize=None)
def classifier_weights(model: str, num_classes: int) -> int:
    import torch

    from scopeloss.classify.model import build_model

    with torch.device("meta"):  # shapes only, no memory
        net = build_model(model, num_classes)
    return FLOAT * sum(p.numel() for p in net.parameters())


def disk(config: Mapping) -> dict:
    """What the grid writes to disk, from the shapes of what each run keeps:

    * an RL run keeps its final checkpoint (weights, and the logs a rebuild reads) and its
      CSVs; while it trains, its checkpoint also holds Adam's two moments, and a new one is
      written beside the old before the swap: 2 x 3 x weights at the peak;
    * a classification run keeps its best weights (best-eN.pt: a rebuild tests them) and
      small CSVs; while it trains, last.pt holds the weights and the optimiser's state
      (Adam 2, SGD 1 x weights) and best-eN.pt is replaced by the next best: the peak is
      (2 + optimiser) x weights + 2 x weights;
    * the decoded image cache, once per dataset and resize: images x size^2 x 3 bytes."""
    kept, peak, caches = {"rl": 0, "classification": 0}, 0, {}
    per_run: dict[str, list[int]] = {"rl": [], "classification": []}
    for env, loss, _ in grid.rl_runs(config):
        cell = grid.rl_cell(config, env, loss)
        w = rl_weights(json.dumps(cell["env"], sort_keys=True))
        ppo = cell["ppo"]
        logs = LOG_BYTES_PER_UPDATE * int(ppo["total_steps"]) // (
            int(ppo["num_envs"]) * int(ppo["num_steps"]))
        kept["rl"] += w + logs
        per_run["rl"].append(w + logs)
        peak = max(peak, 2 * 3 * w + logs)
    for dataset, experiment, loss, _ in grid.classification_runs(config):
        cell = grid.classification_cell(config, dataset, experiment, loss)
        d, e = cell["dataset"], cell["experiment"]
        w = classifier_weights(e["model"], sources.get(d["kind"]).class_count(
            DatasetConfig.of(d)))
        opt = 2 if e["optimizer"] == "adam" else 1
        kept["classification"] += w
        per_run["classification"].append(w)
        peak = max(peak, (2 + opt) * w + 2 * w)
        size = int(d["resize_size"])
        caches[(dataset, size)] = dataset_images(d) * size * size * 3
    return {"kept": kept, "per_run": {k: (min(v), max(v)) for k, v in per_run.items() if v},
            "caches": sum(caches.values()), "peak_per_job": peak}


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def disk_report(d: Mapping, k: int, gpus: int) -> str:
    per = "; ".join(f"{kind} {_bytes(lo)}" + (f"-{_bytes(hi)}" if hi != lo else "") + " per run"
                    for kind, (lo, hi) in d["per_run"].items())
    total = sum(d["kept"].values()) + d["caches"]
    return (f"disk: {_bytes(total)} once the grid is done ({per}; decoded image caches "
            f"{_bytes(d['caches'])}); while training, up to {_bytes(d['peak_per_job'])} more per "
            f"running job ({gpus * k} at once). Reclaim: docs/running.md#disk")


# ----------------------------------------------------------------------------- calibrate
def _python() -> list[str]:
    return [sys.executable]


def _env() -> dict:
    src = str(ROOT / "src")
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def calibrate_rl(config: Mapping, env_name: str, updates: int, log=print) -> float:
    """Agent steps/s of one job: `updates` updates of the env's first cell through the real
    trainer; the median of the per-update rates after the first (warm-up) update."""
    loss = config["rl"]["losses"][0]
    cell = grid.rl_cell(config, env_name, loss)
    p = cell["ppo"]
    n = max(2, updates)
    p["total_steps"] = n * int(p["num_envs"]) * int(p["num_steps"])
    p["eval_every"] = 0
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [*_python(), "-m", "scopeloss.rl.train", "--env", env_name, "--loss", loss,
               "--seed", "0", "--out", tmp, "--hparams", grid.cell_json(cell)]
        log(f"calibrating {env_name}: {n} updates of {p['num_envs']} envs x {p['num_steps']} steps")
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"calibration of {env_name} failed:\n{proc.stderr[-2000:]}")
        import csv

        with open(Path(tmp) / "updates.csv") as fh:
            sps = [float(r["sps"]) for r in csv.DictReader(fh)]
    steady = sorted(sps[1:] or sps)
    return steady[len(steady) // 2]


def calibrate_classifier(model: str, image_size: int, batch_size: int, iters: int,
                         log=print) -> float:
    script = ROOT / "benchmarks" / "classify_throughput.py"
    cmd = [*_python(), str(script), "--model", model, "--image-size", str(image_size),
           "--batch-size", str(batch_size), "--iters", str(iters), "--warmup", "1"]
    log(f"calibrating {model} at {image_size}px, batch {batch_size}: {iters} steps")
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    found = re.search(r"([\d.]+) train images/s", proc.stdout)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"calibration of {model} failed:\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    return float(found.group(1))


def calibrate(config: Mapping, updates: int = 3, iters: int = 3, log=print) -> dict:
    rates: dict = {"machine": _machine(), "rl": {}, "classification": {}, "scaling": {}}
    for env in dict.fromkeys(e for e, _, _ in grid.rl_runs(config)):
        rates["rl"][env] = round(calibrate_rl(config, env, updates, log), 2)
    seen: dict[str, dict] = {}
    for c in cells(config):
        if c["kind"] == "classification":
            seen.setdefault(f"{c['name']}@{c['image_size']}", c)
    for key, c in seen.items():
        rates["classification"][key] = round(
            calibrate_classifier(c["name"], c["image_size"], c["batch_size"], iters, log), 3)
    return rates


def _machine() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        names = [s.strip() for s in out.stdout.splitlines() if s.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        names = []
    cores = len(os.sched_getaffinity(0))
    return f"{len(names)}x {names[0]}, {cores} cores" if names else f"CPU only, {cores} cores"


def count_gpus() -> int:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("gpu_slot", ROOT / "workflow" / "scripts" / "gpu_slot.py")
    if spec is None or spec.loader is None:
        return 1
    mod = module_from_spec(spec)
    spec.loader.exec_module(mod)
    return max(1, len(mod.visible_gpus()))


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scopeloss.plan", description=__doc__.split("\n\n")[0])
    p.add_argument("--configfile", nargs="+", action="extend", default=None,
                   help="config.yaml, then preset overlays in order, as Snakemake takes them "
                   "(--configfile a b; default config.yaml)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs (default: those visible, else 1)")
    p.add_argument("--jobs-per-gpu", type=int, default=None,
                   help="K (default $SCOPELOSS_JOBS_PER_GPU, else 1)")
    p.add_argument("--throughput", default=None, help="rates file (YAML or JSON)")
    p.add_argument("--calibrate", action="store_true", help="measure the rates on this machine")
    p.add_argument("--calibrate-updates", type=int, default=3)
    p.add_argument("--calibrate-iters", type=int, default=3)
    p.add_argument("--save-rates", default=None, help="write the calibrated rates here (YAML)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    args = p.parse_args(argv)
    configs = args.configfile or ["config.yaml"]
    config = grid.load_config(*configs)
    grid.check_config(config)
    k = args.jobs_per_gpu or int(os.environ.get("SCOPELOSS_JOBS_PER_GPU") or 1)
    gpus = args.gpus or count_gpus()
    if args.calibrate:
        rates = calibrate(config, args.calibrate_updates, args.calibrate_iters,
                          log=lambda m: print(m, file=sys.stderr, flush=True))
        source = "calibrated on this machine"
        if args.throughput:  # measured scaling (and anything not calibrated) from the file
            extra = load_rates(args.throughput)
            rates["scaling"] = extra["scaling"]
        if args.save_rates:
            import yaml

            atomic.write_text(args.save_rates, yaml.safe_dump(rates, sort_keys=False))
    elif args.throughput:
        rates = load_rates(args.throughput)
        source = args.throughput
    else:
        p.error("give --throughput RATES.yaml (e.g. benchmarks/rates/*.yaml) or --calibrate")
    est = estimate(config, rates, gpus, k)
    est["disk"] = disk(config)
    if args.json:
        print(json.dumps(est, indent=2))
    else:
        print(report(est, configs=configs, rates_source=source, machine=str(rates.get("machine", ""))))
        print(disk_report(est["disk"], k, gpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
