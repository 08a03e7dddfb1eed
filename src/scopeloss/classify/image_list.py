"""A dataset given as list files, the format ImageNet-LT, Places-LT and iNaturalist 2018 ship:
one line per image, ``relative/path label`` (label an integer from 0), a file per split
(``train_list``, ``val_list``, ``test_list`` under ``dataset.root``); the paths are relative
to ``{root}/{image_dir}``.

Nothing leaves the tree: an absolute path, a ``..`` that climbs out, or a symlink whose
target lies outside ``{root}/{image_dir}`` (the Caltech scan's rule) stops the manifest with
the list file and line, before anything is decoded; so does a listed file that is missing,
a line that is not ``path label``, and a class with no training image. Class names are the
labels, ``0000``, ``0001``, ...
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from scopeloss.classify.errors import DataUnavailable
from scopeloss.classify.splits import SPLITS
from scopeloss.params import ImageListConfig


def list_paths(dcfg: ImageListConfig) -> dict[str, Path]:
    root = Path(dcfg.root)
    return {"train": root / dcfg.train_list, "val": root / dcfg.val_list,
            "test": root / dcfg.test_list}


def check_lists(dcfg: ImageListConfig) -> None:
    """Every list file present, or one message naming those missing and the keys."""
    missing = [f"{split}_list: {path}" for split, path in list_paths(dcfg).items()
               if not path.is_file()]
    if missing:
        raise DataUnavailable(f"list file(s) not found: {'; '.join(missing)} (paths relative "
                              f"to dataset.root, {Path(dcfg.root).resolve()}; each line "
                              "`relative/path label`)")


def lists_digest(dcfg: ImageListConfig) -> str:
    """A short digest of the list files' contents (names the manifest: an edit of a list
    makes a new split)."""
    h = hashlib.sha256()
    for path in list_paths(dcfg).values():
        h.update(path.read_bytes() if path.is_file() else str(path).encode())
    return h.hexdigest()[:12]


def _read(path: Path) -> list[tuple[str, int, int]]:
    """(relative path, label, line number) of every non-blank line of a list file."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        try:
            label = int(parts[1]) if len(parts) == 2 else -1
        except ValueError:
            label = -1
        if label < 0:
            raise DataUnavailable(f"{path}, line {number}: {line.strip()!r} is not "
                                  "`relative/path label` with an integer label >= 0")
        rows.append((parts[0], label, number))
    return rows


def _inside(rel: str, base: Path, real_base: Path) -> str | None:
    """Why the listed ``rel`` is refused (leaves the tree, missing), None if it is fine."""
    if Path(rel).is_absolute():
        return "an absolute path (paths are relative to the image folder)"
    target = Path(os.path.realpath(base / rel))
    if not target.is_relative_to(real_base):
        return "leads outside the dataset tree (.. or a symlink out)"
    if not target.is_file():
        return "no such file"
    return None


def split_items(dcfg: ImageListConfig) -> tuple[list[str], dict[str, list[list]]]:
    """(class names, {split: [[relative path, label], ...]}) from the three list files."""
    check_lists(dcfg)
    base = Path(dcfg.root) / dcfg.image_dir
    real_base = Path(os.path.realpath(base))
    items: dict[str, list[list]] = {}
    for split, path in list_paths(dcfg).items():
        rows = _read(path)
        for rel, _, number in rows:
            why = _inside(rel, base, real_base)
            if why is not None:
                raise DataUnavailable(f"{path}, line {number}: {rel}: {why}")
        items[split] = [[Path(rel).as_posix(), label] for rel, label, _ in rows]
    num = 1 + max((label for s in SPLITS for _, label in items[s]), default=-1)
    trained = {label for _, label in items["train"]}
    empty = [c for c in range(num) if c not in trained]
    if empty:
        raise DataUnavailable(f"{list_paths(dcfg)['train']}: class(es) with no training "
                              f"image: {', '.join(map(str, empty[:10]))}"
                              f"{' ...' if len(empty) > 10 else ''}")
    return [f"{c:04d}" for c in range(num)], items


def image_count(dcfg: ImageListConfig) -> int:
    return sum(len(_read(p)) for p in list_paths(dcfg).values() if p.is_file())


def class_count(dcfg: ImageListConfig) -> int:
    labels = [label for p in list_paths(dcfg).values() if p.is_file() for _, label, _ in _read(p)]
    return 1 + max(labels, default=-1)
