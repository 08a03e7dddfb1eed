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
