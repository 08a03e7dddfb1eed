"""Caltech-256 on disk: where it lives, fetching and verifying the archive (torchvision's
record and checksum), and extracting it safely. No dataset is ever downloaded unless asked
(``download_missing``); a missing tree stops with a message saying where to put it."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from scopeloss import atomic
from scopeloss.classify.errors import DataUnavailable

# torchvision.datasets.Caltech256 uses this record and checksum.
CALTECH_URL = "https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar"
CALTECH_MD5 = "67b4f42ca05d46448c6bb8ecd2220f6d"
CALTECH_ARCHIVE = "256_ObjectCategories.tar"
CALTECH_FOLDER = "256_ObjectCategories"


def caltech_paths(root) -> tuple[Path, Path]:
    """(archive path, extracted folder) under ``root``."""
    base = Path(root) / "caltech256"
    return base / CALTECH_ARCHIVE, base / CALTECH_FOLDER


def _where_message(root) -> str:
    archive, folder = caltech_paths(root)
    return (f"put the archive {CALTECH_ARCHIVE} (md5 {CALTECH_MD5}, from {CALTECH_URL}) at "
            f"{archive.resolve()}, or its extracted folder at {folder.resolve()} "
            f"(holding 001.ak47 ... 257.clutter), then rerun "
            f"`python -m scopeloss.classify.data prepare --dataset caltech256 --root {root}`")


def md5sum(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest, md5: str | None, timeout: float = 60.0) -> Path:
    """Stream ``url`` to a temporary file beside ``dest``, check its md5, rename it onto ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    with atomic.atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, last = 0, time.monotonic()
            while block := response.read(1 << 20):
                out.write(block)
                done += len(block)
                if time.monotonic() - last > 30:
                    last = time.monotonic()
                    print(f"  {done / 2**20:.0f} / {total / 2**20:.0f} MiB", file=sys.stderr)
        if md5 is not None and (got := md5sum(tmp)) != md5:
            raise DataUnavailable(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
    return dest


def safe_extract(archive, dest) -> None:
    """Extract a tar archive into ``dest``, refusing members that would land outside it."""
    dest = Path(dest).resolve()
    try:
        tar = tarfile.open(archive)
    except (tarfile.TarError, OSError) as err:
        raise DataUnavailable(f"cannot open the archive {archive}: {err}") from err
    with tar:
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if not target.is_relative_to(dest):
                raise DataUnavailable(f"unsafe path {member.name!r} in {archive}")
            if member.issym() or member.islnk():
                raise DataUnavailable(f"link {member.name!r} in {archive}: refused")
            if not (member.isfile() or member.isdir()):
                raise DataUnavailable(f"special file {member.name!r} in {archive}: refused")
        try:
            tar.extractall(dest, filter="data")
        except tarfile.TarError as err:  # FilterError, SpecialFileError, ReadError, ...
            raise DataUnavailable(f"cannot extract {archive}: {err}") from err


def ensure_caltech256(root, *, download_missing: bool = False, url: str = CALTECH_URL,
                      md5: str | None = CALTECH_MD5, timeout: float = 60.0) -> Path:
    """The extracted Caltech-256 folder under ``root``; extract (and fetch) it if needed."""
    archive, folder = caltech_paths(root)
    if folder.is_dir():
        return folder
    if not archive.is_file() and not download_missing:  # before the lock makes any folder
        raise DataUnavailable(f"Caltech-256 not found: {_where_message(root)}")
    with atomic.exclusive_lock(folder.parent / ".prepare.lock"):
        if folder.is_dir():  # another job finished it while we waited
            return folder
        if not archive.is_file():
            if not download_missing:
                raise DataUnavailable(f"Caltech-256 not found: {_where_message(root)}")
            try:
                download(url, archive, md5, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as err:
                raise DataUnavailable(f"could not download {url} ({err}); "
                                      f"{_where_message(root)}") from err
        elif md5 is not None and (got := md5sum(archive)) != md5:
            raise DataUnavailable(f"{archive} has md5 {got}, expected {md5}: the archive is "
                                  f"corrupt or incomplete; delete it and {_where_message(root)}")
        # Extract beside the target, then rename, so a killed extraction leaves nothing half-done.
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".extract-"))
        try:
            safe_extract(archive, tmp)
            found = tmp / CALTECH_FOLDER
            if not found.is_dir():
                raise DataUnavailable(f"{archive} holds no {CALTECH_FOLDER}/ folder")
            os.replace(found, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# --- scanning the extracted tree ------------------------------------------------------
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff",
                    ".webp"}


MAX_PIXELS = 50_000_000  # larger images are skipped before decoding (Caltech's largest: ~8 MP)


def image_problem(path: Path, size: int = 256, max_pixels: int | None = None) -> str | None:
    """Why ``path`` is not a usable image (None if it is): a wrong extension, more than
    ``max_pixels`` pixels (read from the header, before decoding), or PIL cannot open and
    fully decode it. ``verify()`` alone misses a truncated data chunk, so the image is
    decoded (JPEGs at a reduced scale >= ``size``, which still reads every byte)."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image extension"
    from PIL import Image

    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                return (f"{width}x{height} pixels, above the budget of {max_pixels:,} "
                        "(not decoded)")
            im.verify()
        with Image.open(path) as im:
            im.draft("RGB", (size, size))
            im.load()
    except Exception as err:  # PIL raises many types for a file that is not an image
        return f"{type(err).__name__}: {err}"
    return None


def _outside(path: Path, root: Path) -> str | None:
    """Why the scan does not follow ``path`` (a symlink out of ``root``, a dangling one,
    something that is neither file nor folder), None when it stays inside the tree."""
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.exists():
            return f"dangling symlink (to {os.readlink(path)})"
        if not target.is_relative_to(root):
            return "symlink to outside the dataset tree (not followed)"
    return None


def scan_caltech(folder, reasons: dict | None = None
                 ) -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """(class names, [(relative path, label)], skipped relative paths) in folder order;
    ``reasons`` (if given) receives why each entry was skipped.

    The scan stays inside ``folder``: a symlink (file or class folder) is followed only when
    its target lies inside the tree; one that leads out, or nowhere, is skipped and listed,
    never opened. So is every other entry that is not used: a file beside the class folders,
    a folder inside a class folder (not scanned), a file without an image's extension, an
    image above ``MAX_PIXELS``, one PIL cannot decode. A class folder with no image file
    stops the scan before anything is decoded, and again one whose images all fail."""
    folder = Path(folder)
    root = Path(os.path.realpath(folder))
    skipped: dict[str, str] = {}
    class_dirs = []
    for entry in sorted(folder.iterdir()):
        rel = entry.relative_to(folder).as_posix()
        why = "hidden (not a class folder)" if entry.name.startswith(".") else _outside(entry, root)
        if why is None and not entry.is_dir():
            why = "not a class folder (a file at the top of the tree)"
        if why is None:
            class_dirs.append(entry)
        else:
            skipped[rel] = why
    if not class_dirs:
        raise DataUnavailable(f"{folder} holds no class folders (expected NNN.name/)")
    classes, candidates = [], []
    for label, cdir in enumerate(class_dirs):
        classes.append(cdir.name)
        for f in sorted(cdir.iterdir()):
            rel = f.relative_to(folder).as_posix()
            why = _outside(f, root)
            if why is None and f.is_dir():
                why = "a folder inside a class folder (not scanned)"
            elif why is None and not f.is_file():
                why = "not a regular file"
            elif why is None and f.suffix.lower() not in IMAGE_EXTENSIONS:
                why = "not an image extension"
            if why is None:
                candidates.append((f, rel, label))
            else:
                skipped[rel] = why
    _check_no_empty_class(folder, classes, {label for *_, label in candidates}, "image file")
    items = []
    for f, rel, label in candidates:
        problem = image_problem(f)
        if problem is None:
            items.append((rel, label))
        else:
            skipped[rel] = problem
    _check_no_empty_class(folder, classes, {label for _, label in items}, "readable image")
    if reasons is not None:
        reasons.update(skipped)
    return classes, items, sorted(skipped)


def _check_no_empty_class(folder: Path, classes: list[str], present: set[int], what: str):
    empty = [classes[i] for i in range(len(classes)) if i not in present]
    if empty:  # a class with no image would silently shift the labels' meaning and counts
        raise DataUnavailable(f"{folder}: class folder(s) with no {what}: "
                              f"{', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''}; "
                              "add images or remove the folder(s)")
