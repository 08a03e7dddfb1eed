"""Run a command on a GPU slot of its own: ``python gpu_slot.py [--gpus N] -- CMD ARGS...``.

Snakemake's local executor counts ``gpu`` resource tokens (``--resources gpu=T``) but does
not say which GPU a job should use. This script picks one, sets ``CUDA_VISIBLE_DEVICES``
to its UUID and execs the command, which inherits the lock that holds the slot: the slot
is free again the moment the job exits, however it exits.

* **K jobs per GPU.** Each GPU has K slots (one lock file per slot,
  ``.snakemake/gpu-locks/<host>/<uuid>.<slot>.lock``). A job takes a slot on the *least
  loaded* GPU, so jobs spread over the GPUs before they stack. K is
  ``SCOPELOSS_JOBS_PER_GPU`` (or ``--jobs-per-gpu``); unset, there is no cap of its own
  and the profile's token count T is the limit: least-loaded placement of at most T jobs
  on G GPUs never puts more than ceil(T / G) on one GPU. So with ``gpu=G×K`` tokens
  (profiles/local) every GPU carries at most K jobs. When every GPU already carries K
  jobs, the job waits (it says so once on stderr) until one exits.
* **GPUs are identified by UUID** (``nvidia-smi --query-gpu=index,uuid``), so the lock is
  the same whatever index order CUDA or the scheduler uses, and two jobs of a cluster node
  whose cgroups renumber their GPUs from 0 do not block each other.
* **A given ``CUDA_VISIBLE_DEVICES`` is respected** (set by SLURM, ``salloc`` or the
  user): only those GPUs are used, whether given by index or by UUID. An empty value (or
  ``-1``) means no GPU: the command runs unchanged.
* **``--gpus 0``** (a job whose device is cpu; rules pass ``--gpus {resources.gpu}``)
  claims nothing and leaves the environment alone (so a SLURM job that holds a GPU
  *shard* through ``gres`` with ``gpu=0`` still sees the GPU SLURM gave it).
* No GPU at all (no ``nvidia-smi``, a CPU box): the command runs unchanged.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ENV_K = "SCOPELOSS_JOBS_PER_GPU"
ENV_POLL = "SCOPELOSS_GPU_SLOT_POLL_S"
ENV_LOCKS = "SCOPELOSS_GPU_LOCK_DIR"


def nvidia_smi_gpus() -> list[tuple[str, str]]:
    """[(index, uuid)] of the GPUs nvidia-smi sees (empty when there is none)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[1]:
            gpus.append((parts[0], parts[1]))
    return gpus


def visible_gpus() -> list[str]:
    """The ids (UUIDs where nvidia-smi gives them) of the GPUs this job may use."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    listed = nvidia_smi_gpus()
    if given is None:
        return [uuid for _, uuid in listed]
    wanted = [g.strip() for g in given.split(",") if g.strip()]
    if "-1" in wanted:  # CUDA stops at the first invalid id
        wanted = wanted[: wanted.index("-1")]
    if not listed:  # no nvidia-smi: trust the ids as given
        return wanted
    by_index = dict(listed)
    uuids = {uuid for _, uuid in listed}
    out = []
    for g in wanted:
        prefixed = [u for u in uuids if u.startswith(g)]  # CUDA accepts UUID prefixes
        if g in by_index:
            out.append(by_index[g])
        elif len(prefixed) == 1:
            out.append(prefixed[0])
        else:  # MIG devices and ids nvidia-smi does not list: kept as given
            out.append(g)
    return list(dict.fromkeys(out))


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _safe(gpu: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in gpu)


def _held_slots(lock_dir: Path, gpu: str) -> tuple[int, int | None]:
    """(slots of `gpu` held by running jobs, the lowest free slot index)."""
    held, free = 0, None
    slot = 0
    while True:
        path = lock_dir / f"{_safe(gpu)}.{slot}.lock"
        if not path.exists():
            return held, (slot if free is None else free)
        fd = _try_lock(path)
        if fd is None:
            held += 1
        else:
            os.close(fd)
            if free is None:
                free = slot
        slot += 1


def claim(gpus: list[str], n: int, k: int | None, lock_dir: Path,
          poll_s: float = 2.0) -> list[tuple[str, int]]:
    """Take a slot on each of the `n` least-loaded GPUs that have one free (at most `k`
    holders per GPU; None = no cap); wait while there are not `n` such GPUs."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        mutex = os.open(lock_dir / "claim.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(mutex, fcntl.LOCK_EX)  # one claim at a time: counts stay true
            loads = []
            for order, gpu in enumerate(gpus):
                held, free = _held_slots(lock_dir, gpu)
                if k is None or held < k:
                    loads.append((held, order, gpu, free))
            if len(loads) >= n:
                taken = []
                for _held, _, gpu, free in sorted(loads)[:n]:
                    fd = _try_lock(lock_dir / f"{_safe(gpu)}.{free}.lock")
                    assert fd is not None, "a free slot was taken while the claim lock was held"
                    taken.append((gpu, fd))
                return taken
        finally:
            os.close(mutex)
        if not said:
            print(f"gpu_slot: waiting: every GPU holds {k} job(s)", file=sys.stderr, flush=True)
            said = True
        time.sleep(poll_s)


def jobs_per_gpu(flag: int | None) -> int | None:
    value = flag if flag is not None else os.environ.get(ENV_K) or None
    if value is None:
        return None
    k = int(value)
    if k < 1:
        raise SystemExit(f"gpu_slot: jobs per GPU must be >= 1, got {k}")
    return k


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: gpu_slot.py [--gpus N] [--jobs-per-gpu K] -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="gpu_slot.py")
    parser.add_argument("--gpus", type=int, default=1,
                        help="GPUs this job uses (0: a cpu job, claims nothing)")
    parser.add_argument("--jobs-per-gpu", type=int, default=None,
                        help=f"at most K jobs per GPU (default ${ENV_K}; unset = no cap)")
    args = parser.parse_args(argv[:split])
    cmd = argv[split + 1:]
    if not cmd:
        parser.error("no command after --")
    if args.gpus <= 0:
        os.execvp(cmd[0], cmd)
    k = jobs_per_gpu(args.jobs_per_gpu)
    gpus = visible_gpus()
    if gpus:
        if args.gpus > len(gpus):
            raise SystemExit(f"gpu_slot: the job wants {args.gpus} GPUs, {len(gpus)} visible")
        lock_dir = Path(os.environ.get(ENV_LOCKS) or Path(".snakemake") / "gpu-locks" / socket.gethostname())
        poll_s = float(os.environ.get(ENV_POLL) or 2.0)
        taken = claim(gpus, args.gpus, k, lock_dir, poll_s)
        for _, fd in taken:
            os.set_inheritable(fd, True)  # the slot lives as long as the command
        chosen = ",".join(g for g, _ in taken)
        os.environ["CUDA_VISIBLE_DEVICES"] = chosen
        cap = f"at most {k} jobs per GPU" if k else "no per-GPU cap (the gpu tokens limit)"
        print(f"gpu_slot: CUDA_VISIBLE_DEVICES={chosen} ({cap})", file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
