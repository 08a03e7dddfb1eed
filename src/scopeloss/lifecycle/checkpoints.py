"""Checkpoints: written atomically, read back as data only and checked, restored under
``restoring``, moved aside (``quarantine``) when they cannot be used."""

from __future__ import annotations

import glob
import io
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from scopeloss import atomic
from .encoding import from_data, to_data
from .messages import describe, log, refusal


class CheckpointError(OSError):
    """A checkpoint could not be written (the message names the file and the OS error)."""


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
        quarantine(path, f"it holds more than data, refused unread ({refusal(exc)})", log)
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


def _unused_name(path: Path) -> Path:
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate
