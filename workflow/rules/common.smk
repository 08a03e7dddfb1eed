# Shared paths and helpers. Cell hyperparameters come from scopeloss.config (imported in
# the Snakefile as `grid`); nothing here computes anything.

import os
import shlex
from glob import glob

RESULTS = "results"
TABLES = f"{RESULTS}/tables"
FIGURES = "figures"
SRC = os.path.join(workflow.basedir, "src")
# Every job puts the workflow's src/ first on PYTHONPATH, so the package's CLIs run from
# this checkout inside a conda env that does not install it. OMP_NUM_THREADS keeps torch
# within the job's `threads`. gpu_slot.py gives a local job one GPU of its own.
_ENV = (
    "PYTHONPATH="
    + shlex.quote(SRC)
    + "${{PYTHONPATH:+:$PYTHONPATH}} OMP_NUM_THREADS={threads} "
)
PY = (
    _ENV
    + "python "
    + shlex.quote(os.path.join(workflow.basedir, "workflow/scripts/gpu_slot.py"))
    + " -- python -m"
)
PY_CPU = _ENV + "python -m"


def _code(*patterns):
    """The src/ modules a rule runs: a change to any of them reruns the rule's jobs."""
    files = set()
    for pattern in patterns:
        files.update(glob(os.path.join(SRC, "scopeloss", pattern)))
    return sorted(os.path.relpath(f) for f in files)


SHARED_CODE = ("__init__.py", "io.py", "runinfo.py")
RL_CODE = _code("rl/*.py", "losses.py", *SHARED_CODE)
CLASSIFY_CODE = _code("classify/*.py", "losses.py", *SHARED_CODE)
ANALYSIS_CODE = _code("analysis/*.py", *SHARED_CODE)

RL_LOSSES = "|".join(grid.RL_LOSSES)
CLASSIFICATION_LOSSES = "|".join(grid.CLASSIFICATION_LOSSES)


wildcard_constraints:
    seed=r"\d+",
    env=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    experiment=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


def rl_run_dir(env, loss, seed):
    return f"{RESULTS}/rl/{env}/{loss}/seed{seed}"


def classification_run_dir(dataset, experiment, loss, seed):
    return f"{RESULTS}/classification/{dataset}/{experiment}/{loss}/seed{seed}"


def rl_run_dirs():
    return [rl_run_dir(*run) for run in grid.rl_runs(config)]


def classification_run_dirs():
    return [classification_run_dir(*run) for run in grid.classification_runs(config)]


RL_TABLE_FILES = [
    f"{TABLES}/{name}.{ext}"
    for name in ("rl_episodes", "rl_updates", "rl_eval", "rl_final_runs", "rl_final")
    for ext in ("csv", "parquet")
]
CLASSIFICATION_TABLE_FILES = [
    f"{TABLES}/{name}.{ext}"
    for name in ("classification_per_class", "classification_summary")
    for ext in ("csv", "parquet")
]


def precision_table_files():
    return [
        f"{TABLES}/precision_{experiment}.{ext}"
        for experiment in config["classification"]["experiments"]
        for ext in ("md", "tex", "csv")
    ]


def has_rl():
    return bool(grid.rl_runs(config))


def has_classification():
    return bool(grid.classification_runs(config))


def all_targets():
    targets = []
    if has_rl():
        targets += [
            f"{FIGURES}/rl_training_curves.png",
            f"{FIGURES}/rl_training_curves.pdf",
            f"{FIGURES}/rl_aggregate.png",
        ]
    if has_classification():
        targets += precision_table_files()
        targets.append(f"{FIGURES}/precision_by_class_frequency.png")
    return targets


def final_message():
    lines = ["", "Done. Results:"]
    if has_rl():
        lines += [
            f"  figure (Figure 2):   {FIGURES}/rl_training_curves.png (.pdf)",
            f"  aggregate scores:    {FIGURES}/rl_aggregate.png, {FIGURES}/rl_aggregate.csv",
            f"  RL tables:           {TABLES}/rl_final.csv (per env x loss), rl_*.parquet",
        ]
    if has_classification():
        for experiment in config["classification"]["experiments"]:
            lines.append(
                f"  precision table:     {TABLES}/precision_{experiment}.md (.tex, .csv)"
            )
        lines.append(f"  precision figure:    {FIGURES}/precision_by_class_frequency.png")
    lines.append(f"  runs:                {RESULTS}/rl/, {RESULTS}/classification/")
    return "\n".join(lines)
