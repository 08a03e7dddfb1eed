"""The training CLIs' shared way of taking a cell's hyperparameters: ``--hparams`` (an
inline JSON object or a .json file) and repeatable ``--set section.key=value``; and its run
settings (how and where it runs, not what it learns): ``--run``, same format."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml


def _load_json_object(arg: str | None, flag: str) -> dict[str, Any]:
    if not arg:
        return {}
    text = arg.strip()
    if not text.startswith(("{", "[")):  # inline JSON (a list is then rejected below)
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"{flag} {arg!r} is neither a JSON object nor an existing file")
        text = path.read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{flag} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def load_hparams(arg: str | None) -> dict[str, Any]:
    """``--hparams``: an inline JSON object or the path of a .json file holding one."""
    return _load_json_object(arg, "--hparams")


def load_run(arg: str | None) -> dict[str, Any]:
    """``--run``: the run settings, an inline JSON object or the path of a .json file
    holding one (same rules as ``load_hparams``). ``--set run.key=value`` adds to it: take
    ``parse_set(...).pop("run", {})`` and merge it over this."""
    return _load_json_object(arg, "--run")


def split_run(sets: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``parse_set`` output -> (hyperparameter overrides, ``run.*`` run-setting overrides)."""
    sets = dict(sets or {})
    run = sets.pop("run", {})
    if not isinstance(run, dict):
        raise ValueError(f"--set run must name a key (run.KEY=VALUE), got {run!r}")
    return sets, run


_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def numbers_as_yaml12(value: Any) -> Any:
    """``value`` with every string in scientific notation ("1e6", "3e-4": strings to YAML
    1.1, numbers to YAML 1.2 and to a reader) as a float, in nested mappings and lists too:
    the one rule for numbers in overlays, config.yaml and ``--set``."""
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {k: numbers_as_yaml12(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers_as_yaml12(v) for v in value]
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
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            first = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(f"--set {item!r}: the value {raw!r} is not valid YAML ({first})") from None
        value = numbers_as_yaml12(value)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {'.'.join(parts[:-1])} is set to a value elsewhere")
        node[parts[-1]] = value
    return out
