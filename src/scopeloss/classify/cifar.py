"""CIFAR-10-LT and CIFAR-100-LT, the long-tail field's benchmarks (Cao et al. 2019, LDAM-DRW).

Read from the datasets' *binary* archives (``cifar-10-binary.tar.gz``,
``cifar-100-binary.tar.gz``: fixed-length records of a label byte (CIFAR-100: coarse, then
fine) and 3,072 pixel bytes, the R, G and B planes of 32 x 32), md5-checked, never unpickled
and never extracted: the members are read by their exact names from the tar stream.

The split: **test** is the official test set, balanced (1,000 / 100 images per class).
**Validation** is ``val_per_class`` images of each class drawn first (seeded) from the
official training images, so it never overlaps test and is balanced like it. **Train** keeps
``floor(n_max * ratio ** (-c / (C - 1)))`` of the remaining images of class c (the
exponential profile, n_max 5,000 / 500), capped by what remains: only a class whose profile
asks for more than remains loses images to validation (at ratio 100 and 20 per class:
CIFAR-100-LT's class 0 keeps 480 of the protocol's 500, CIFAR-10-LT's 4,980 of 5,000). Items are
named ``train/<index>`` / ``test/<index>`` in the official order, so the manifest alone
rebuilds the images.
"""

from __future__ import annotations

import math
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from scopeloss.classify.caltech import download, md5sum
from scopeloss.classify.errors import DataUnavailable
from scopeloss.params import CifarLTConfig

if TYPE_CHECKING:  # numpy is imported where the images are read: the Snakefile reads ARCHIVES
    import numpy as np

PIXELS = 32 * 32 * 3


@dataclass(frozen=True)
class Archive:
    file: str
    md5: str
    url: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_bytes: int  # the fine label is the last of them
    names: str  # the member listing the class names, one per line
    classes: int
    per_class: int  # official training images per class


ARCHIVES = {
    "cifar10": Archive(
        "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        tuple(f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)),
        ("cifar-10-batches-bin/test_batch.bin",), 1, "cifar-10-batches-bin/batches.meta.txt",
        10, 5000),
    "cifar100": Archive(
        "cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        ("cifar-100-binary/train.bin",), ("cifar-100-binary/test.bin",), 2,
        "cifar-100-binary/fine_label_names.txt", 100, 500),
}


def archive_path(dcfg: CifarLTConfig) -> Path:
    return Path(dcfg.root) / ARCHIVES[dcfg.variant].file


def prepare(dcfg: CifarLTConfig, *, download_missing: bool = False, **fetch) -> None:
    """The archive present and its md5 the official one, or a DataUnavailable saying where
    to put it (fetched first when ``download_missing`` and the network allows)."""
    spec, path = ARCHIVES[dcfg.variant], archive_path(dcfg)
    if not path.is_file() and download_missing:
        download(fetch.get("url", spec.url), path, spec.md5)
    if not path.is_file():
        raise DataUnavailable(
            f"{dcfg.variant}: {path.resolve()} not found; download {spec.url} (md5 {spec.md5}) "
            f"into {Path(dcfg.root).resolve()} (dataset.root), or run `python -m "
            "scopeloss.classify.data prepare` where the network allows")
    _check_md5(str(path), spec.md5)


def fetch(variant: str, root, url: str | None = None) -> Path:
    """The archive of ``variant`` under ``root``, downloaded if missing, md5-checked."""
    spec = ARCHIVES[variant]
    path = Path(root) / spec.file
    if not path.is_file():
        download(url or spec.url, path, spec.md5)
    _check_md5(str(path), spec.md5)
    return path


@lru_cache(maxsize=4)
def _check_md5(path: str, want: str) -> None:
    got = md5sum(path)
    if got != want:
        raise DataUnavailable(f"{path}: md5 {got}, not the official {want} (a partial or "
                              "other download: delete it and fetch it again)")


@lru_cache(maxsize=4)
def read_archive(path: str, variant: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (uint8 images (N, 32, 32, 3), int64 labels (N,))} and the class names, read
    from the named members only (no extraction, no pickle)."""
    import numpy as np

    spec = ARCHIVES[variant]
    record = spec.label_bytes + PIXELS
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for split, members in (("train", spec.train), ("test", spec.test)):
                chunks = []
                for name in members:
                    data = _member(tar, name, path)
                    if len(data) % record:
                        raise DataUnavailable(f"{path}: {name} is {len(data)} bytes, not a "
                                              f"whole number of {record}-byte records")
                    chunks.append(np.frombuffer(data, np.uint8).reshape(-1, record))
                rows = np.concatenate(chunks)
                labels = rows[:, spec.label_bytes - 1].astype(np.int64)
                if labels.max(initial=0) >= spec.classes:
                    raise DataUnavailable(f"{path}: a label above {spec.classes - 1} in {split}")
                images = rows[:, spec.label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                out[split] = (np.ascontiguousarray(images), labels)
            names = [n.strip() for n in _member(tar, spec.names, path).decode().splitlines()]
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataUnavailable(f"{path}: cannot be read as a .tar.gz ({err})") from None
    out["names"] = [n for n in names if n]  # type: ignore[assignment]
    return out


def _member(tar: tarfile.TarFile, name: str, path: str) -> bytes:
    try:
        member = tar.getmember(name)
    except KeyError:
        raise DataUnavailable(f"{path}: has no member {name} (not the binary version of "
                              "the dataset?)") from None
    handle = tar.extractfile(member) if member.isfile() else None
    if handle is None:
        raise DataUnavailable(f"{path}: {name} is not a regular file")
    return handle.read()


def class_counts(dcfg: CifarLTConfig, per_class: int | None = None) -> np.ndarray:
    """Training images kept per class by the exponential profile from ``per_class`` (the
    archive's images per class; the official 5,000 / 500 by default), before the cap of
    what validation leaves (the plan's count: numpy only)."""
    import numpy as np

    spec = ARCHIVES[dcfg.variant]
    head, n = per_class or spec.per_class, spec.classes
    return np.array([math.floor(head * dcfg.imbalance_ratio ** (-c / (n - 1)))
                     for c in range(n)], dtype=np.int64)


def split_items(dcfg: CifarLTConfig) -> tuple[list[str], dict[str, list[list]]]:
    """(class names, {split: [[item, label], ...]}): see the module docstring."""
    import numpy as np

    data = read_archive(str(archive_path(dcfg)), dcfg.variant)
    train_labels, test_labels = data["train"][1], data["test"][1]
    names: list[str] = data["names"]  # type: ignore[assignment]
    classes = ARCHIVES[dcfg.variant].classes
    available = np.bincount(train_labels, minlength=classes)
    if available.min() <= dcfg.val_per_class:
        raise DataUnavailable(f"dataset.val_per_class ({dcfg.val_per_class}) leaves no training "
                              f"image of some class (the archive has {available.min()} of one)")
    profile = class_counts(dcfg, int(available.min()))
    rng = np.random.default_rng(dcfg.split_seed)
    out: dict[str, list[list]] = {"train": [], "val": [], "test": []}
    for c in range(classes):
        idx = rng.permutation(np.flatnonzero(train_labels == c))
        val, rest = idx[:dcfg.val_per_class], idx[dcfg.val_per_class:]
        keep = min(int(profile[c]), len(rest))
        out["val"] += [[f"train/{i}", c] for i in np.sort(val)]
        out["train"] += [[f"train/{i}", c] for i in np.sort(rest[:keep])]
    out["test"] = [[f"test/{i}", int(label)] for i, label in enumerate(test_labels)]
    return [f"{c:03d}.{name}" for c, name in enumerate(names)], out


def images(dcfg: CifarLTConfig, items, size: int) -> np.ndarray:
    """uint8 RGB (N, size, size, 3) of ``items`` (bilinear resize from 32 px if asked)."""
    import numpy as np

    data = read_archive(str(archive_path(dcfg)), dcfg.variant)
    index = {"train": [], "test": []}  # type: dict[str, list[int]]
    order = []
    for name, _ in items:
        split, i = name.split("/")
        order.append((split, len(index[split])))
        index[split].append(int(i))
    parts = {s: data[s][0][np.asarray(ix, dtype=np.int64)] for s, ix in index.items()}
    out = np.stack([parts[s][k] for s, k in order]) if order else np.zeros((0, 32, 32, 3),
                                                                        np.uint8)
    if size != 32:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(out).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return out
