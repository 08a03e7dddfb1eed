"""The training CLIs' shared way of taking a cell's hyperparameters: ``--hparams`` (an
inline JSON object or a .json file) and repeatable ``--set section.key=value``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def load_hparams(arg: str | None) -> dict[str, Any]:
    """``--hparams``: an inline JSON object or the path of a .json file holding one."""
    if not arg:
        return {}
    text = arg.strip()
    if not text.startswith(("{", "[")):  # inline JSON (a list is then rejected below)
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"--hparams {arg!r} is neither a JSON object nor an existing file")
        text = path.read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--hparams is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--hparams must be a JSON object, got {type(value).__name__}")
    return value


def parse_set(items) -> dict[str, Any]:
    """``["ppo.lr=3e-4", "experiment.augmentation.flip_p=0"]`` -> nested overrides.

    Values are parsed as YAML, except that "3e-4" (which YAML 1.1 reads as a string) is a float.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        dotted, sep, raw = item.partition("=")
        parts = dotted.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        value = yaml.safe_load(raw)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {'.'.join(parts[:-1])} is set to a value elsewhere")
        node[parts[-1]] = value
    return out
