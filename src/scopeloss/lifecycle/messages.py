"""How the lifecycle speaks: one logger (standard error) and one-line descriptions of
errors."""

from __future__ import annotations

import re
import sys



def log(message: str) -> None:
    """The trainers' logger: one line to standard error, flushed (the job's log file)."""
    print(message, file=sys.stderr, flush=True)


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, whole (a message of many lines joined)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, KeyError):
        text = f"no key {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def refusal(exc: BaseException) -> str:
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
