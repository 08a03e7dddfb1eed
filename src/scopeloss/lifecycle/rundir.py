"""The run directory: its checks, the lock a trainer holds on it for the whole run, the
watchdog that stops a trainer whose launcher is gone, stale temporaries."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .messages import log


LOCK_NAME = ".lock"
DYING_HOLDER_WAIT_S = 15.0
CKPT_DIR = ".ckpt"
TB_DIR = "tb"
CHECKPOINT_NAMES = {"rl": "checkpoint.pt", "classify": "last.pt"}  # each trainer's


@dataclass(frozen=True)
class RunLayout:
    """Where a run directory keeps what, named once for both trainers: the lock, the
    checkpoint folder and the trainer's checkpoint in it, the classifier's best-epoch
    weights, TensorBoard's folder; the outputs are the trainer's own (``OUTPUTS``)."""

    out: Path
    trainer: str  # "rl" or "classify"

    @property
    def lock(self) -> Path:
        return self.out / LOCK_NAME

    @property
    def ckpt_dir(self) -> Path:
        return self.out / CKPT_DIR

    @property
    def checkpoint(self) -> Path:
        return self.ckpt_dir / CHECKPOINT_NAMES[self.trainer]

    def best(self, epoch: int) -> Path:
        return self.ckpt_dir / f"best-e{epoch}.pt"

    @property
    def tensorboard(self) -> Path:
        return self.out / TB_DIR


def layout(out: str | os.PathLike, trainer: str) -> RunLayout:
    return RunLayout(Path(out), trainer)


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory."""


@contextmanager
def own_run_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Hold ``out`` exclusively for the block (creating it); RunDirBusy if another process
    does. A start that fails or is interrupted before writing anything there removes the
    directories it created (a refused start leaves nothing behind)."""
    out = Path(out)
    created = [d for d in (out, *out.parents) if not d.exists()]  # deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        _remove_unused(out, created)
        raise RunDirBusy(f"--out {out}: cannot create the run directory's lock file: "
                         f"{err.strerror or err}") from None
    failed = True
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as err:  # a full disk: say where
            raise OSError(err.errno, err.strerror, str(out / LOCK_NAME)) from None
        yield out
        failed = False
    finally:
        if failed:
            _remove_unused(out, created)
        os.close(fd)  # releases the lock


def _remove_unused(out: Path, created: list[Path]) -> None:
    """Remove the directories this start created, if nothing but the lock is in them."""
    if not created or not out.is_dir() or {p.name for p in out.iterdir()} - {LOCK_NAME}:
        return
    (out / LOCK_NAME).unlink(missing_ok=True)
    for d in created:
        try:
            d.rmdir()  # only empty ones: a sibling run's files keep the parents
        except OSError:
            break


def ensure_dir(path: str | os.PathLike, key: str) -> Path:
    """The directory a config key names (a dataset root, a cache): created only inside an
    existing directory; a ConfigError naming the key otherwise (never a tree from /)."""
    from scopeloss.config_keys import ConfigError

    path = Path(path)
    if path.is_dir():
        return path
    if path.exists():
        raise ConfigError(f"{key}: {path} exists and is not a directory")
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"{key}: {path}: its parent {path.parent} is not a directory")
    if not path.parent.is_dir():
        raise ConfigError(f"{key}: {path} does not exist, nor does its parent {path.parent} "
                          "(a directory is created only inside an existing one)")
    try:
        path.mkdir()
    except OSError as err:
        raise ConfigError(f"{key}: cannot create {path}: {err.strerror or err}") from None
    return path


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False


def process_status(pid: int | str) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process from /proc, None if there is no such process.
    The command name (2nd field) may contain spaces and ')': split after its last ')'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def _running(pid: str) -> bool:
    """Whether ``pid`` is a process that is not exiting (unknown pids count as running)."""
    if not pid.isdigit():
        return True
    if not Path(f"/proc/{pid}").exists():
        return False
    status = process_status(pid)
    return status is None or status[0] not in ("Z", "X")


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except OSError:
        return "unknown"


def check_out_dir(out: str | os.PathLike) -> Path:
    """``--out`` must be (or become) a directory: checked before anything is loaded."""
    from scopeloss.config_keys import ConfigError

    if str(out).strip() in ("", "."):
        raise ConfigError(f"--out {str(out)!r} is the current directory; name the run's own "
                          "directory (e.g. results/rl/Pong/scope/seed1)")
    out = Path(out)
    if out.resolve() == Path.cwd().resolve():
        raise ConfigError(f"--out {out} is the current directory; name the run's own directory")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"--out {out}: {parent} is not a writable directory")
            break
    return out


def remove_stale_temporaries(run_dir: str | os.PathLike, log: Callable[[str], None] = log
                             ) -> list[Path]:
    """Remove the temporary files of atomic writes that a kill interrupted
    (``.NAME.XXXX.tmp``) from a run directory and its ``.ckpt/``; one ``log`` line if any."""
    run_dir = Path(run_dir)
    stale = [f for folder in (run_dir, run_dir / CKPT_DIR) if folder.is_dir()
             for f in folder.glob(".*.tmp") if f.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log(f"{run_dir}: removed {len(stale)} stale temporary file(s) of an interrupted "
            f"write ({', '.join(f.name for f in stale)})")
    return stale
