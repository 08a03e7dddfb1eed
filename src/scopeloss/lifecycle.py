"""One run lifecycle for both trainers: the run directory, its lock and watchdog, checkpoints
(seeding and RNG state: ``scopeloss.seeding``).

A run is identified by its ``identity`` (what it learns: names, seed, resolved
hyperparameters, code fingerprint; never run settings). ``begin`` decides what a job does
with its run directory, in this order: (1) ``summary.json`` has the identity and every
output is there: skip; (2) the checkpoint has the identity and says ``finished``: rebuild
the outputs from it, no training; (3) it has the identity: resume; (4) otherwise afresh.
Checkpoints are written atomically (``save_checkpoint``; a failure names the file, the OS
error and the free space) and read back checked (``load_checkpoint``: an unreadable or
malformed one, crafted ones included, is moved aside under a unique ``.corrupt`` name).
Messages go through one logger, ``log`` (standard error).

A trainer owns its run directory for the whole run, and does not outlive its launcher.
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
import glob
import io
import json
import os
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from scopeloss import atomic

LOCK_NAME = ".lock"
STOP_WITH_PID = "SCOPELOSS_STOP_WITH_PID"
WATCH_INTERVAL_S = 1.0
DYING_HOLDER_WAIT_S = 15.0


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory."""


class CheckpointError(OSError):
    """A checkpoint could not be written (the message names the file and the OS error)."""


def log(message: str) -> None:
    """The trainers' logger: one line to standard error, flushed (the job's log file)."""
    print(message, file=sys.stderr, flush=True)


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


def _ancestors(pid: int) -> set[int]:
    """The pids above ``pid`` (its parent, the parent's parent, ... up to pid 1)."""
    seen: set[int] = set()
    while pid > 1:
        status = process_status(pid)
        if status is None:
            break
        pid = status[1]
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
        if _stopping():
            # A signal that reached the launcher too (SLURM's --signal goes to every process
            # of the step) is already being answered: the trainer stops at its safe point,
            # checkpointed; a second signal here would stop it at once, losing that update.
            log(f"the launcher (pid {launcher}) is gone; the stop under way goes on")
            return
        log(f"the launcher (pid {launcher}) is gone; stopping (the last checkpoint stays, a "
            "rerun resumes from it)")
        os.kill(me, signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-launcher", daemon=True).start()
    return launcher


# ----------------------------------------------------------------------------- interrupts
class Interrupted(Exception):
    """The trainer stopped on a signal at a safe point, its last completed unit checkpointed."""

    def __init__(self, signum: int, unit: str, done: int):
        self.signum, self.exit_code = signum, 128 + signum
        super().__init__(f"interrupted ({signal.Signals(signum).name}) after {unit} {done}, "
                         f"checkpointed; the same command resumes from {unit} {done + 1}")


_ACTIVE: list["StopRequests"] = []  # the stop requests of the running trainer, if entered
_EARLY: list[int] = []  # signals received outside the training loop (start-up, final writes)
_LOOP: list[bool] = []  # set once the training loop was entered


class StopNow(KeyboardInterrupt):
    """A second signal while a stop was already requested: stop at once."""


def _record(signum, frame) -> None:
    _EARLY.append(signum)


def _record_and_raise(signum, frame) -> None:
    _EARLY.append(signum)
    raise KeyboardInterrupt


def _install(handler) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in StopRequests.SIGNALS:
            signal.signal(sig, handler)


def catch_signals_early() -> None:
    """A trainer CLI's first statement, before its heavy imports: SIGINT and SIGTERM are
    recorded while the modules import (an import is not interrupted half-way, where the
    traceback would come from torch's insides); ``imports_done`` acts on them."""
    _install(_record)


def imports_done() -> None:
    """After the CLI's imports: a signal recorded so far stops it here (KeyboardInterrupt);
    from now on one raises KeyboardInterrupt at once *and* is recorded, so third-party code
    that swallows the interrupt (MinAtar's bare ``except:`` around its matplotlib import)
    cannot lose it: ``StopRequests`` finds the record and stops before the first unit.
    A no-op unless ``catch_signals_early`` ran (``main`` called in-process, e.g. by tests,
    keeps its caller's handlers)."""
    if signal.getsignal(signal.SIGINT) is not _record:
        return
    if _EARLY:
        raise KeyboardInterrupt
    _install(_record_and_raise)


def outside_the_loop(unit: str) -> tuple[str, int]:
    """The one line and exit code of a signal received outside the training loop."""
    signum = _EARLY[0] if _EARLY else signal.SIGINT
    name = signal.Signals(signum).name
    if _LOOP:
        return (f"interrupted ({name}) while writing the run's outputs: the same command "
                "writes them again from the last checkpoint", 128 + signum)
    return f"interrupted ({name}) before the first {unit}: nothing was lost", 128 + signum


def _stopping() -> bool:
    """Whether the running trainer was already asked to stop (by a signal)."""
    return any(s.requested is not None for s in _ACTIVE)


class StopRequests:
    """While entered, SIGINT and SIGTERM ask the trainer to stop at its next safe point (the
    end of an update or epoch): ``requested`` holds the signal, the loop checkpoints and
    raises ``Interrupted``. A second signal stops at once (KeyboardInterrupt): the last
    checkpoint written stays. Handlers are only installed in the main thread (tests run
    trainers in threads too); the previous ones come back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, unit: str, log: Callable[[str], None] = log):
        self.unit, self.log, self.requested = unit, log, None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None:
            raise StopNow
        self.requested = signum
        self.log(f"{signal.Signals(signum).name} received: stopping after this {self.unit} "
                 "(send it again to stop at once)")

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
            _ACTIVE.append(self)
            if _EARLY:  # a start-up signal that third-party code swallowed
                self.__exit__()
                raise KeyboardInterrupt
            _LOOP.append(True)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    def check(self, done: int, checkpoint: Callable[[], None] | None) -> None:
        """At a safe point after ``done`` units: if a stop was asked, ``checkpoint()`` (None
        when the unit is checkpointed already) and raise Interrupted."""
        if self.requested is None:
            return
        if checkpoint is not None:
            checkpoint()
        raise Interrupted(self.requested, self.unit, done)


class LossFailure(Exception):
    """The loss gave what training cannot go on with (a non-finite value, a tensor that is
    not one scalar): the trainer stops with this one line and exit 1, no complete summary
    written, so the aggregator never counts the run as finished."""


def last_good(unit: str, checkpointed: int, path: Path) -> str:
    """Where a stopped run stands: its last good checkpoint, or none."""
    if checkpointed:
        return (f"the last good checkpoint is {unit} {checkpointed} ({path}); the same command "
                f"resumes from {unit} {checkpointed + 1}")
    return "no checkpoint was written: the same command starts afresh"


def interrupted_again(unit: str) -> str:
    """The message of a second signal (stopped at once)."""
    return (f"interrupted again: stopped at once; the same command resumes from the last "
            f"checkpointed {unit}")


def trainer_exit_code(train: Callable[[], Any], unit: str) -> int:
    """Run ``train()`` for a trainer CLI; how it stopped as one line and an exit code: 0
    done, 130/143 interrupted (``Interrupted``, or a signal outside the training loop; a
    second signal 130), 1 a run directory in use, a failed write (a full disk:
    CheckpointError, WriteError) or a loss that failed (LossFailure). Other errors pass."""
    _LOOP.clear()
    try:
        train()
    except Interrupted as exc:
        log(str(exc))
        return exc.exit_code
    except StopNow:
        log(interrupted_again(unit))
        return 130
    except KeyboardInterrupt:  # outside the loop: start-up, or the final writes
        line, code = outside_the_loop(unit)
        log(line)
        return code
    except (RunDirBusy, OSError, LossFailure) as exc:
        log(f"error: {exc}")
        return 1
    return 0


# ----------------------------------------------------------------------------- the run
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


def finished_summary(out: Path, identity: dict, outputs: tuple[str, ...]) -> dict | None:
    """The summary of a finished run with this identity whose outputs are all there, else None."""
    if not all((out / name).is_file() for name in outputs):
        return None
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    want = json.loads(json.dumps(identity, default=atomic.json_default))
    same = isinstance(summary, dict) and all(summary.get(k) == v for k, v in want.items())
    return summary if same else None


def begin(out: Path, identity: dict, outputs: tuple[str, ...], ckpt_path: Path,
          required: dict[str, type], log: Callable[[str], None] = log) -> tuple[str, Any]:
    """What this job does with its run directory: ``("skip", summary)``, ``("rebuild",
    checkpoint)``, ``("resume", checkpoint)`` or ``("afresh", None)`` (module docstring).
    Every checkpoint holds ``identity`` and ``finished`` besides the ``required`` keys."""
    summary = finished_summary(out, identity, outputs)
    if summary is not None:
        log(f"{out}: already finished, all outputs present; nothing to do")
        return "skip", summary
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, log)
    ckpt = load_checkpoint(ckpt_path, {"identity": dict, "finished": bool, **required}, log)
    if ckpt is not None and ckpt["identity"] != identity:
        old, new = ckpt["identity"].get("code_fingerprint"), identity.get("code_fingerprint")
        why = f"other code (fingerprint {old} -> {new})" if old != new else "other settings"
        quarantine(ckpt_path, f"from {why}", log, suffix=".other")
        ckpt = None
    # A summary from other settings must not sit beside a run that is not finished.
    (out / "summary.json").unlink(missing_ok=True)
    if ckpt is None:
        return "afresh", None
    if ckpt["finished"]:
        log(f"{out}: finished but an output is missing; rebuilding outputs from the final "
            "checkpoint (no training)")
        return "rebuild", ckpt
    return "resume", ckpt


def remove_stale_temporaries(run_dir: str | os.PathLike, log: Callable[[str], None] = log
                             ) -> list[Path]:
    """Remove the temporary files of atomic writes that a kill interrupted
    (``.NAME.XXXX.tmp``) from a run directory and its ``.ckpt/``; one ``log`` line if any."""
    run_dir = Path(run_dir)
    stale = [f for folder in (run_dir, run_dir / ".ckpt") if folder.is_dir()
             for f in folder.glob(".*.tmp") if f.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log(f"{run_dir}: removed {len(stale)} stale temporary file(s) of an interrupted "
            f"write ({', '.join(f.name for f in stale)})")
    return stale


def save_checkpoint(path: Path, obj: dict) -> None:
    """Serialise in memory (NumPy values as tensors, ``to_data``), then write atomically with
    plain file I/O, so that a failed write (a full disk, a quota) is a CheckpointError naming
    ``path``, the OS error, the bytes needed and those free, not torch's ``enforce fail at
    inline_container.cc``."""
    import torch

    buffer = io.BytesIO()
    try:
        torch.save(to_data(obj), buffer)
    except Exception as exc:  # anything torch raises serialising (the disk may be why)
        raise CheckpointError(f"could not write checkpoint {path}: {describe(exc)} "
                              f"({atomic.free_space(Path(path).parent)})") from None
    try:
        atomic.write_bytes(path, buffer.getbuffer(), label="checkpoint ")
    except atomic.WriteError as exc:
        raise CheckpointError(str(exc)) from None


def load_checkpoint(path: str | os.PathLike, required: dict[str, type],
                    log: Callable[[str], None] = log) -> dict | None:
    """The checkpoint dict at ``path``, None if there is none. ``required`` maps each key it
    must hold to that value's type. The file is read as data only (``weights_only=True``:
    tensors, numbers, strings, containers; a pickle that would build any other object, code
    included, is refused before anything runs). An unreadable or malformed one, or anything
    but a regular file in its place, is moved aside (``quarantine``) and None returned: the
    run starts afresh instead of failing the grid."""
    import pickle

    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        if path.is_symlink() or not path.is_file():
            raise ValueError("not a regular file")
        state = read_checkpoint(path)
        if not isinstance(state, dict):
            raise ValueError(f"a {type(state).__name__}, not a checkpoint of this trainer")
        wrong = [k for k, kind in required.items() if not isinstance(state.get(k), kind)]
        if wrong:
            raise ValueError(f"not a checkpoint of this trainer (missing or malformed: "
                             f"{', '.join(wrong)})")
    except pickle.UnpicklingError as exc:  # weights_only refused an object
        quarantine(path, f"it holds more than data, refused unread ({_refusal(exc)})", log)
        return None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors, ...
        quarantine(path, describe(exc), log)
        return None
    return state


def read_checkpoint(path: str | os.PathLike) -> Any:
    """What ``save_checkpoint`` wrote, read as data only (``weights_only=True``); raises
    pickle.UnpicklingError for anything else, before it runs."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch warns about a crafted file's pickle protocol
        warnings.simplefilter("ignore")
        return from_data(torch.load(path, map_location="cpu", weights_only=True))


class CorruptCheckpoint(Exception):
    """A checkpoint that loaded but could not be restored (``restoring``)."""


@contextmanager
def restoring(what: str = "restoring") -> Iterator[None]:
    """Any error inside the block (a crafted checkpoint's wrong shapes, types, missing keys)
    becomes a CorruptCheckpoint whose message says what was wrong."""
    try:
        yield
    except CorruptCheckpoint:
        raise
    except Exception as exc:
        raise CorruptCheckpoint(f"{what}: {describe(exc)}") from None


def resume_or_afresh(start: Callable[[dict | None], Any], ckpt: dict | None, path: Path,
                     log: Callable[[str], None] = log) -> Any:
    """``start(ckpt)``; if restoring from ``ckpt`` fails (CorruptCheckpoint), move the
    checkpoint aside and ``start(None)``: a fresh run, built anew."""
    if ckpt is None:
        return start(None)
    try:
        return start(ckpt)
    except CorruptCheckpoint as exc:
        quarantine(path, str(exc), log)
        return start(None)


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, whole (a message of many lines joined)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, KeyError):
        text = f"no key {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _refusal(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused, without its advice (which ends in
    loading with ``weights_only=False``: the one thing to never do with such a file)."""
    text = " ".join(str(exc).split())
    if found := re.search(r"GLOBAL ([\w.]+)", text):
        return f"it names {found.group(1)}, which no data does"
    if found := re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:\.|Check the documentation|$)",
                          text):
        if "weights_only" not in found.group(1) and "safe_globals" not in found.group(1):
            return found.group(1)
    return "torch's data-only reader refused it"


KEEP_ASIDE = 1  # moved-aside checkpoints kept per kind (.corrupt, .other): the newest


def quarantine(path: Path, reason: str, log: Callable[[str], None] = log,
               suffix: str = ".corrupt") -> Path:
    """Move ``path`` aside under a name no earlier one has (``PATH.corrupt``,
    ``PATH.corrupt.1``, ...) with one whole ``log`` line naming both and the reason. Only
    the newest ``KEEP_ASIDE`` of that kind stay: each older one is removed, logged (every
    settings change would otherwise keep one more checkpoint)."""
    path = Path(path)
    bad = _unused_name(path.with_name(path.name + suffix))
    os.replace(path, bad)
    what = f"unreadable checkpoint ({reason})" if suffix == ".corrupt" else f"checkpoint is {reason}"
    log(f"{path}: {what}; moved to {bad.name} beside it, starting this run afresh (delete "
        "it once you no longer need it)")
    aside = [p for p in path.parent.glob(glob.escape(path.name + suffix) + "*")
             if p != bad and re.fullmatch(re.escape(path.name + suffix) + r"(\.\d+)?", p.name)]
    for old in sorted(aside, key=lambda p: p.stat().st_mtime)[:max(0, len(aside) + 1 - KEEP_ASIDE)]:
        size = old.stat().st_size
        old.unlink(missing_ok=True)
        log(f"{old}: removed (an older moved-aside checkpoint, {size / 1e6:.1f} MB; the newest "
            f"{KEEP_ASIDE} kept)")
    return bad


# ----------------------------------------------------------------------------- as data
def to_data(obj: Any) -> Any:
    """``obj`` with every NumPy array as a tensor (marked, for ``from_data``) and every NumPy
    scalar as a Python number: what ``torch.load(weights_only=True)`` reads back."""
    import numpy as np
    import torch

    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_data(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def from_data(obj: Any) -> Any:
    """The inverse of ``to_data``."""
    if isinstance(obj, dict):
        if len(obj) == 1 and _NDARRAY in obj:
            return obj[_NDARRAY].numpy()
        return {k: from_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_data(v) for v in obj)
    return obj


_NDARRAY = "__ndarray__"


def _unused_name(path: Path) -> Path:
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate
