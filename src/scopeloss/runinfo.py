"""Provenance recorded in every run's summary.json: versions, git revision, device."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

_PACKAGES = ("scopeloss", "torch", "torchvision", "numpy", "gymnasium", "ale-py",
             "procgen-mirror", "minatar", "scikit-learn", "pandas")


def package_versions(names=_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(start: Path | None = None) -> str | None:
    """The commit of the checkout holding this package (``-dirty`` if modified), else None."""
    where = start or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def device_description(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_info(device) -> dict:
    return {
        "versions": package_versions(),
        "python": platform.python_version(),
        "git_revision": git_revision(),
        "device": str(device),
        "device_name": device_description(device),
        "host": platform.node(),
    }
