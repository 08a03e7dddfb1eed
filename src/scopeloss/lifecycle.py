"""A trainer owns its run directory for the whole run, and does not outlive its launcher.

Both trainers (``scopeloss.rl.ppo``, ``scopeloss.classify.train``) enter ``own_run_dir``
before they read or write anything in ``--out``: an exclusive ``flock`` on ``--out/.lock``
(the holder's pid written inside), held until the run returns. A second trainer on the
same directory stops at once with a message naming the directory and the holder's pid; it
writes nothing there. The kernel releases the lock when its holder dies, kill -9 included,
so a stale lock file never blocks a rerun; a holder that is still exiting (its last threads
closing its files) is waited for, up to 15 s.

``stop_with_launcher`` ends the trainer when the Snakemake that started it is gone: the
training rules run it with ``SCOPELOSS_STOP_WITH_PID=$PPID`` (Snakemake's pid, the parent of
the rule's shell), and a watchdog thread sends the trainer SIGTERM once that process is no
longer among its ancestors (killed and reaped, or the trainer re-parented). Without it, a
``kill -9`` of Snakemake left the trainer running as an orphan that rewrote the outputs of
the rerun that followed (``--unlock``, ``--rerun-incomplete``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

LOCK_NAME = ".lock"
STOP_WITH_PID = "SCOPELOSS_STOP_WITH_PID"
WATCH_INTERVAL_S = 1.0
DYING_HOLDER_WAIT_S = 15.0


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory."""


@contextmanager
def own_run_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Hold ``out`` exclusively for the block (creating it); RunDirBusy if another process does."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunDirBusy(f"--out {out}: cannot create the run directory's lock file: "
                         f"{err.strerror or err}") from None
    try:
        deadline = time.monotonic() + DYING_HOLDER_WAIT_S
        while not _try_lock(fd):
            holder = _holder(fd)
            # a holder that is exiting (gone, or a zombie whose other threads still close
            # its files) releases the lock in a moment: wait for that, never for a live one
            if _running(holder) or time.monotonic() > deadline:
                raise RunDirBusy(
                    f"{out} is in use by another trainer (pid {holder}); it writes nothing "
                    "there while that one runs: wait for it to end, or stop it (kill PID) "
                    "and rerun") from None
            time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield out
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False


def _running(pid: str) -> bool:
    """Whether ``pid`` is a process that is not exiting (unknown pids count as running)."""
    if not pid.isdigit():
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return True


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except OSError:
        return "unknown"


def _ancestors(pid: int) -> set[int]:
    """The pids above ``pid`` (its parent, the parent's parent, ... up to pid 1)."""
    seen: set[int] = set()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as f:
                # the command name (2nd field) may contain spaces: split after its ')'
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if pid in seen:
            break
        seen.add(pid)
    return seen


def stop_with_launcher(log: Callable[[str], None]) -> int | None:
    """Start the watchdog on ``$SCOPELOSS_STOP_WITH_PID`` (if set, on Linux); its pid or None."""
    value = os.environ.get(STOP_WITH_PID, "").strip()
    if not value.isdigit() or not Path("/proc/self/stat").exists():
        return None
    launcher = int(value)
    me = os.getpid()
    if launcher not in _ancestors(me):
        log(f"{STOP_WITH_PID}={launcher} is not an ancestor of this trainer (pid {me}); "
            "not watching it")
        return None

    def watch() -> None:
        while launcher in _ancestors(me):
            time.sleep(WATCH_INTERVAL_S)
        log(f"the launcher (pid {launcher}) is gone; stopping (the last checkpoint stays, a "
            "rerun resumes from it)")
        os.kill(me, signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-launcher", daemon=True).start()
    return launcher
