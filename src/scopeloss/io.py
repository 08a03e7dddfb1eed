"""Atomic writes: every output appears whole or not at all (temporary file, then rename)."""

from __future__ import annotations

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


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_parquet(path: str | os.PathLike, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# ------------------------------------------------------------- a training run's checkpoints
def remove_stale_temporaries(run_dir: str | os.PathLike, log) -> list[Path]:
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


def load_checkpoint(path: str | os.PathLike, required: dict[str, type], log) -> dict | None:
    """The checkpoint dict at ``path``, None if there is none. ``required`` maps each key it
    must hold to that value's type. An unreadable or malformed one (crafted ones included) is
    moved aside under a name no earlier one has (``PATH.corrupt``, ``PATH.corrupt.1``, ...)
    with one ``log`` line naming it, and None returned: the run starts afresh instead of
    failing the grid."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(state, dict):
            raise ValueError(f"a {type(state).__name__}, not a checkpoint of this trainer")
        wrong = [k for k, kind in required.items() if not isinstance(state.get(k), kind)]
        if wrong:
            raise ValueError(f"not a checkpoint of this trainer (missing or malformed: "
                             f"{', '.join(wrong)})")
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        bad = _unused_name(path.with_name(path.name + ".corrupt"))
        os.replace(path, bad)
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        log(f"{path}: unreadable checkpoint ({type(exc).__name__}: {reason}); moved to "
            f"{bad.name} beside it, starting this run afresh (delete it once you no longer "
            "need it)")
        return None
    return state


def _unused_name(path: Path) -> Path:
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _json_default(value: Any) -> Any:
    # numpy scalars/arrays and paths appear in configs and metrics.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
