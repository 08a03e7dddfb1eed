"""Atomic writes: every output appears whole or not at all (temporary file, then rename)."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class WriteError(OSError):
    """A write that failed (a full disk, a quota, a size limit); the message names the file,
    the OS error, the bytes the write needed and those that were free."""


@contextmanager
def atomic_path(path: str | os.PathLike, size: int | None = None, label: str = ""
                ) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.
    An OSError in the block becomes a WriteError naming ``label`` + ``path`` (``size``: the
    bytes being written, when known), with the free space measured before the partial file
    is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as err:
        message = describe_failure(path, err, size, Path(tmp), label)
        Path(tmp).unlink(missing_ok=True)
        error = WriteError(message)
        error.errno = err.errno  # (not strerror: OSError would print "[Errno N] ..." then)
        raise error from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def free_space(folder: Path) -> str:
    """'N bytes free in FOLDER' (the nearest existing folder at or above it)."""
    for where in (Path(folder), *Path(folder).parents):
        try:
            st = os.statvfs(where)
        except OSError:
            continue
        return f"{st.f_bavail * st.f_frsize} bytes free in {where}"
    return "free space unknown"


def describe_failure(path: Path, err: OSError, size: int | None = None,
                     tmp: Path | None = None, label: str = "") -> str:
    """'could not write LABEL PATH: ERROR (the write needed N bytes; M bytes free in DIR)'
    (``tmp``: the partial file, still there, whose size says how much was written)."""
    if isinstance(err, WriteError):
        return str(err)
    try:
        written = tmp.stat().st_size if tmp is not None else None
    except OSError:
        written = None
    free = free_space(Path(path).parent)
    needed = (f"{size} bytes" if size is not None else
              f"more than the {written} bytes written" if written is not None else
              "an unknown size")
    return (f"could not write {label}{path}: {err.strerror or err} (the write needed "
            f"{needed}; {free})")


def write_bytes(path: str | os.PathLike, data: bytes | memoryview, label: str = "") -> None:
    with atomic_path(path, size=len(data), label=label) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV without its index (rendered first: its size is known)."""
    write_text(path, frame.to_csv(index=False))


def write_parquet(path: str | os.PathLike, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


@contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Exclusive ``flock`` on ``path`` (created) for the block, so that parallel jobs build a
    shared file (a manifest, a cache) once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def json_default(value: Any) -> Any:
    """``json.dumps``' ``default`` for the values our configs and metrics hold."""
    # numpy scalars/arrays and paths appear in configs and metrics.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
