"""Device choice and mixed precision, shared by both trainers.

bf16 autocast is used where the config asks for it (``bf16: true``) and the device type is
in ``BF16_AUTOCAST_DEVICES``: CUDA only, because on CPUs without AMX bf16 is slower than
float32. The tests add "cpu" to run the autocast code paths on machines without a GPU.
"""

from __future__ import annotations

import os

import torch

from scopeloss.config_keys import ConfigError

BF16_AUTOCAST_DEVICES = {"cuda"}


def resolve_device(name: str, key: str = "device") -> torch.device:
    """'auto' is cuda when available, else cpu; 'cuda' without one is an error naming ``key``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} is 'cuda' but no CUDA device is available; "
                         "allowed here: auto, cpu")
    device = torch.device(name)
    # GPU checks: SCOPELOSS_SYNC_DEBUG=warn (or error) makes CUDA report every host sync.
    if device.type == "cuda" and os.environ.get("SCOPELOSS_SYNC_DEBUG"):
        torch.cuda.set_sync_debug_mode(os.environ["SCOPELOSS_SYNC_DEBUG"])
    return device


def check_threads(run: dict, keys: tuple[str, ...], section: str) -> None:
    """Each of ``keys`` set in ``run`` is at most this machine's cores (ConfigError naming
    the key): 100000 threads ended in ``libgomp: Out of memory``, naming nothing."""
    machine = os.cpu_count() or 1
    for key in keys:
        value = run.get(key)
        if value is not None and value > machine:
            raise ConfigError(f"{section}.{key} is {value}, more than this machine's "
                              f"{machine} cores; allowed: 1..{machine}, or null (the job's cores)")


def job_cores() -> int:
    """The cores this job may use: its CPU affinity (what Snakemake/SLURM/taskset granted),
    or OMP_NUM_THREADS if set and smaller. The default of both trainers' thread settings."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and 0 < int(omp) < cores:
        cores = int(omp)
    return max(1, cores)


def use_fast_cuda_kernels(device: torch.device) -> None:
    """On CUDA: let cuDNN pick kernels for the fixed input shapes, and allow TF32 for what
    runs in float32 outside autocast. No effect elsewhere."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def bf16_autocast(device: torch.device, requested: bool) -> torch.autocast:
    """An autocast context (reusable) that is on when ``requested`` and the device gains."""
    enabled = bool(requested) and device.type in BF16_AUTOCAST_DEVICES
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def apply_determinism(device: torch.device, deterministic: bool):
    """Set the kernel choices; return a function that restores the previous ones."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        use_fast_cuda_kernels(device)

    def restore():
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
         torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])

    return restore


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (True if it could be told).

    By default each large block (a minibatch's activations, ~0.5 GB for the IMPALA CNN at
    512) is its own mmap, returned to the kernel when freed and zero-filled page by page when
    mapped again: about a third of a CPU update's time. With mmap off, a 2 GiB trim threshold
    and a 1 GiB top pad the heap keeps those pages (what MALLOC_MMAP_MAX_=0 etc. would do,
    set from inside the process). Not on other C libraries (musl, macOS): a no-op there."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 2**30)))


def compile_mode(value: bool | str) -> str | None:
    """run.compile as torch.compile's ``mode`` (None: not compiled)."""
    if value is False:
        return None
    return "default" if value is True else value
