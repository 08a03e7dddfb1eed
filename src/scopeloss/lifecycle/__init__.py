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

The lifecycle's five jobs, one module each: the run directory and its lock (``rundir``),
signals, stops and the watchdog (``interrupts``), what a job does with its directory
(``begin``), checkpoints (``checkpoints``) and their contents as data (``encoding``);
``messages`` holds the one logger. The trainers use them through this package.
"""

from .begin import begin, finished_summary, resume_or_afresh
from .checkpoints import (KEEP_ASIDE, CheckpointError, CorruptCheckpoint, load_checkpoint,
                          quarantine, read_checkpoint, restoring, save_checkpoint)
from .encoding import from_data, to_data
from .interrupts import (STOP_WITH_PID, WATCH_INTERVAL_S, Interrupted, LossFailure, StopNow,
                         StopRequests, catch_signals_early, imports_done, interrupted_again,
                         last_good, outside_the_loop, stop_with_launcher, trainer_exit_code)
from .messages import describe, log
from .rundir import (DYING_HOLDER_WAIT_S, LOCK_NAME, RunDirBusy, RunLayout, check_out_dir,
                     ensure_dir, layout, own_run_dir, process_status, remove_stale_temporaries)

__all__ = [
    "begin", "finished_summary", "resume_or_afresh",
    "KEEP_ASIDE", "CheckpointError", "CorruptCheckpoint", "load_checkpoint", "quarantine",
    "read_checkpoint", "restoring", "save_checkpoint",
    "from_data", "to_data",
    "Interrupted", "LossFailure", "StopNow", "StopRequests", "catch_signals_early",
    "imports_done", "interrupted_again", "last_good", "outside_the_loop", "trainer_exit_code",
    "describe", "log",
    "DYING_HOLDER_WAIT_S", "LOCK_NAME", "STOP_WITH_PID", "WATCH_INTERVAL_S", "RunDirBusy",
    "RunLayout", "layout",
    "check_out_dir", "ensure_dir", "own_run_dir", "process_status",
    "remove_stale_temporaries", "stop_with_launcher",
]
