"""Signals and stops: Ctrl-C and SIGTERM recorded from the first instant, checkpointed
stops inside the loop, a loss that failed, each trainer's exit code, and the watchdog that
stops a trainer whose launcher is gone."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .messages import log
from .rundir import RunDirBusy, process_status

STOP_WITH_PID = "SCOPELOSS_STOP_WITH_PID"
WATCH_INTERVAL_S = 1.0


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


# ----------------------------------------------------------------------------- the watchdog
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
