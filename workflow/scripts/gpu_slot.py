"""Run a command on one GPU of its own: ``python gpu_slot.py -- CMD ARGS...``.

Snakemake's local executor counts ``gpu`` resource tokens (``--resources gpu=N``) but does
not say which GPU a job should use. This claims a free one with an exclusive lock file
per GPU (``.snakemake/gpu-locks/<host>/<id>.lock``), sets ``CUDA_VISIBLE_DEVICES`` to it and
execs the command, which inherits the locked descriptor: the GPU is free again the moment
the job exits, however it exits. With the token count equal to the number of GPUs a free
one always exists; otherwise the job waits for one.

Nothing is done (the command is exec'd unchanged) when there is no GPU, or under a
cluster scheduler (SLURM_JOB_ID set), which already restricts the job to its own GPUs.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else nvidia-smi's list."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def claim(gpus: list[str], lock_dir: Path, poll_s: float = 2.0) -> tuple[str, int]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for gpu in gpus:
            fd = os.open(lock_dir / f"{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return gpu, fd
        time.sleep(poll_s)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: gpu_slot.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    cmd = argv[1:]
    gpus = [] if os.environ.get("SLURM_JOB_ID") else visible_gpus()
    if gpus:
        lock_dir = Path(".snakemake") / "gpu-locks" / socket.gethostname()
        gpu, fd = claim(gpus, lock_dir)
        os.set_inheritable(fd, True)  # the lock lives as long as the command
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        print(f"gpu_slot: CUDA_VISIBLE_DEVICES={gpu}", file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
