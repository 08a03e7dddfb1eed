"""Running the workflow from tests: a fresh copy of it (``copy_workflow``), Snakemake from the
venv (``snakemake``), and the jobs a dry run plans (``plan``, ``count``, ``hparams``,
``run_settings``). Shared by the workflow, config-input, loss-module and SLURM tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKFLOW_FILES = ("Snakefile", "config.yaml", "presets", "workflow", "envs", "profiles", "src")


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow (and the src/ it runs) in a fresh directory: no results,
    no .snakemake metadata, and a test cannot touch the checkout's own runs."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def plan(cwd: Path, *args: str) -> list[dict]:
    """The jobs `snakemake -n -p` would run: [{rule, wildcards, reason, shell}]."""
    proc = snakemake(cwd, "-n", "-p", *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs: list[dict] = []
    for line in out.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            jobs.append({"rule": m.group(1), "wildcards": {}, "reason": "", "shell": ""})
        elif jobs and (m := re.match(r"^\s+wildcards: (.*)$", line)):
            jobs[-1]["wildcards"] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
        elif jobs and (m := re.match(r"^\s+reason: (.*)$", line)):
            jobs[-1]["reason"] = m.group(1)
        elif jobs and line.startswith("Shell command: "):
            jobs[-1]["shell"] = line[len("Shell command: "):]
    return jobs


def count(jobs: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for job in jobs:
        out[job["rule"]] = out.get(job["rule"], 0) + 1
    return out


def hparams(job: dict) -> dict:
    return json.loads(re.search(r"--hparams '([^']*)'", job["shell"]).group(1))


def run_settings(job: dict) -> dict:
    return json.loads(re.search(r"--run '([^']*)'", job["shell"]).group(1))


def validate(cfg: dict) -> None:
    """``cfg`` against the workflow's schema, as Snakemake's start-up check does."""
    import jsonschema
    import yaml

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(cfg)
