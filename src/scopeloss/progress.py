"""Watching a long run: TensorBoard scalars beside the CSVs and a progress line with an ETA.

    log = RunLogger(out_dir, enabled=run["tensorboard"], total=num_updates, unit="update",
                    start=start_update, resume_step=global_step)
    log.scalars(global_step, {"train/policy_loss": 0.12, "perf/sps": 5400.0})
    log.progress(update, global_step, ret=12.5)   # prints at a steady cadence, with an ETA
    log.close()

* Scalars go to ``out_dir/tb`` through ``torch.utils.tensorboard.SummaryWriter``, created
  on the first call (so a run that logs nothing makes no directory). ``enabled=False``, or
  tensorboard not installed (one warning), makes ``scalars`` a no-op; the progress line is
  printed either way. A resumed run passes ``resume_step``: TensorBoard then drops the
  events an interrupted attempt wrote at or after that step, so curves have no doubles.
  ``tensorboard --logdir results`` shows every run of the grid, live.
* ``progress`` prints (to stderr by default) on its first call, on the last unit, and
  otherwise when ``every_s`` seconds (30) have passed or another ``every_frac`` (5 %) of the
  total is done, but never twice within ``min_interval_s`` (1 s). The rate is measured
  from the first call (so a resumed run's ETA counts only the work this process did) and
  the ETA is (total - done) / rate. The clock is injectable for tests.

Nothing here imports torch unless scalars are written.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Mapping, TextIO

from scopeloss.lifecycle.rundir import TB_DIR


def _quiet_event_writer_threads() -> None:
    """TensorBoard's writer thread re-raises its error (after storing it for the writer's
    next call, which we turn into a message): do not also print it as a thread traceback."""
    previous = threading.excepthook
    if getattr(previous, "scopeloss_quiet", False):
        return

    def hook(args):
        if type(args.thread).__name__ == "_AsyncWriterThread" and issubclass(
                args.exc_type, OSError):
            return
        previous(args)

    hook.scopeloss_quiet = True  # type: ignore[attr-defined]  # marks the hook as ours
    threading.excepthook = hook


def format_duration(seconds: float | None) -> str:
    """``1:02:03`` (h:mm:ss), ``2d 3:04:05`` past a day, ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class RunLogger:
    def __init__(
        self,
        out_dir: str | Path,
        *,
        enabled: bool = True,
        total: int | None = None,
        unit: str = "update",
        start: int = 0,
        resume_step: int | None = None,
        every_s: float = 30.0,
        every_frac: float = 0.05,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
        prefix: str = "",
        emit: Callable[[str], None] | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.enabled = bool(enabled)
        self.total = total
        self.unit = unit
        self.resume_step = resume_step
        self.every_s = every_s
        self.every_frac = every_frac
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.stream = stream
        self.prefix = prefix
        self.emit = emit  # where progress lines go instead of ``stream`` (a trainer's log)
        self._writer = None
        self._warned = False
        self._t0: float | None = None
        self._done0 = start
        self._step0: int | None = None
        self._last_t: float | None = None
        self._last_done = start
        self.lines: list[str] = []  # every line printed (tests, summaries)

    # ------------------------------------------------------------------ tensorboard
    @property
    def tb_dir(self) -> Path:
        return Path(self.out_dir) / TB_DIR

    def _get_writer(self):
        if not self.enabled:
            return None
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:  # tensorboard not installed
                if not self._warned:
                    print(f"{self.prefix}tensorboard unavailable ({err}); scalars not written",
                          file=self.stream or sys.stderr, flush=True)
                    self._warned = True
                self.enabled = False
                return None
            self.tb_dir.mkdir(parents=True, exist_ok=True)
            _quiet_event_writer_threads()
            with self._writing():
                self._writer = SummaryWriter(str(self.tb_dir), purge_step=self.resume_step,
                                             flush_secs=30)
        return self._writer

    @contextmanager
    def _writing(self):
        """TensorBoard's writer fails in its own thread and re-raises later, naming no file:
        a failure becomes one WriteError naming the events folder, the OS error and the
        free space (a full disk is then a message, not a traceback)."""
        from scopeloss import atomic

        try:
            yield
        except OSError as err:
            self._writer = None
            self.enabled = False
            raise atomic.WriteError(atomic.describe_failure(self.tb_dir / "events.out.tfevents.*",
                                                    err, label="TensorBoard events ")) from None

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One point per name at ``step`` (non-finite and non-numeric values skipped)."""
        writer = self._get_writer()
        if writer is None:
            return
        for name, value in values.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                with self._writing():
                    writer.add_scalar(name, value, int(step))

    def flush(self) -> None:
        if self._writer is not None:
            with self._writing():
                self._writer.flush()

    # ------------------------------------------------------------------ progress
    def rate(self, done: int, now: float) -> float | None:
        """Units per second since the first progress call (None before any time passed)."""
        if self._t0 is None or now <= self._t0 or done <= self._done0:
            return None
        return (done - self._done0) / (now - self._t0)

    def eta(self, done: int, now: float) -> float | None:
        rate = self.rate(done, now)
        if self.total is None or rate is None:
            return None
        return max(0, self.total - done) / rate

    def _due(self, done: int, now: float) -> bool:
        if self._last_t is None:
            return True
        if self.total is not None and done >= self.total:
            return True
        since = now - self._last_t
        if since >= self.every_s:
            return True
        if self.total and self.every_frac > 0 and since >= self.min_interval_s:
            mark = self.every_frac * self.total
            return math.floor(done / mark) > math.floor(self._last_done / mark)
        return False

    def progress(self, done: int, step: int | None = None, **fields) -> str | None:
        """Print a progress line if one is due; returns it (None when not printed)."""
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
            self._step0 = step
        if not self._due(done, now):
            return None
        parts = [f"{self.unit} {done}" + (f"/{self.total}" if self.total else "")]
        if self.total:
            parts[0] += f" ({100.0 * done / self.total:.1f}%)"
        if step is not None:
            parts.append(f"step {step}")
        rate = self.rate(done, now)
        if rate is not None:
            rates = f"{rate:.3g} {self.unit}/s"
            if step is not None and self._step0 is not None and now > self._t0:
                rates += f", {(step - self._step0) / (now - self._t0):.4g} steps/s"
            parts.append(rates)
        parts.append(f"elapsed {format_duration(now - self._t0)}")
        if self.total:
            parts.append(f"ETA {format_duration(self.eta(done, now))}")
        parts += [f"{k} {_fmt(v)}" for k, v in fields.items()]
        line = self.prefix + " | ".join(parts)
        if self.emit is not None:
            self.emit(line)
        else:
            print(line, file=self.stream or sys.stderr, flush=True)
        self.lines.append(line)
        self._last_t, self._last_done = now, done
        return line

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._writer is not None:
            writer = self._writer
            with self._writing():
                writer.flush()
                writer.close()
            self._writer = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
