"""What a job does with its run directory (skip, rebuild, resume, afresh: ``begin``) and
starting afresh when a checkpoint cannot be restored (``resume_or_afresh``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from scopeloss import atomic
from .checkpoints import CorruptCheckpoint, load_checkpoint, quarantine
from .messages import log
from .rundir import remove_stale_temporaries


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
