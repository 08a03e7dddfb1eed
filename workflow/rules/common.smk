# Shared paths and helpers. Cell hyperparameters come from scopeloss.grid (imported in
# the Snakefile as `grid`); nothing here computes anything.

import json
import os
import re
import shlex

RESULTS = "results"
TABLES = f"{RESULTS}/tables"
FIGURES = "figures"
SRC = os.path.join(workflow.basedir, "src")
# Jobs run the package's CLIs with the workflow's src/ first on PYTHONPATH (PY_CPU,
# GPU_SLOT), so they run from this checkout inside a conda env that does not install the
# package; training jobs go through gpu_slot.py, which gives each a GPU slot of its own
# (none for a job that asks for gpu=0). Both are referenced by name in the shell
# templates, never passed as params, and are not in the recorded shell code either, so
# moving the checkout or running from a second one reruns nothing. Jobs set
# OMP_NUM_THREADS={threads} to keep torch and the envs within the job's cores. Training
# jobs also get SCOPELOSS_STOP_WITH_PID=$PPID (this Snakemake's pid): the trainer stops when
# it is gone (scopeloss.lifecycle), so a killed Snakemake leaves no orphan writing results.
_SRC = shlex.quote(os.path.relpath(SRC))
_GPU_SLOT = shlex.quote(
    os.path.relpath(
        os.path.join(workflow.basedir, "workflow", "scripts", "gpu_slot.py")
    )
)
PY_CPU = f"PYTHONPATH={_SRC}${{PYTHONPATH:+:$PYTHONPATH}} python -m"
# Training rules: `{GPU_SLOT} --gpus {resources.gpu} -- python -m scopeloss.<cli>`.
GPU_SLOT = f"PYTHONPATH={_SRC}${{PYTHONPATH:+:$PYTHONPATH}} python {_GPU_SLOT}"

# What a training job runs is identified by a fingerprint of its code (the normalised
# AST of every scopeloss module it imports: comments, docstrings and layout do not
# count), passed as a param: a real code change reruns the cells it affects, a comment
# reruns nothing. The trainers put the same fingerprint in their checkpoint identity.
# A cell whose loss comes from a user's module (loss_modules) adds that module's
# fingerprint (fingerprint.cell_fingerprint): editing it reruns the cells of its losses.
PREPARE_CODE = fingerprint.code_fingerprint(fingerprint.TRAINERS["prepare"])
ANALYSIS_CODE = fingerprint.code_fingerprint(*fingerprint.ANALYSIS)

# Run settings (rl.run, classification.run): how the jobs run, not what they learn.
# Referenced by name in the shell templates (never params), so changing one reruns
# nothing; the trainers keep them out of their checkpoint identity too.
RL_RUN = grid.cell_json(grid.rl_run_settings(config))
CLASSIFY_RUN = grid.cell_json(grid.classification_run_settings(config))

# Losses: the registry (built-ins and those of the loss_modules the Snakefile loaded), and
# the grid's named variants and sweeps (scopeloss.grid.grid_losses).
RL_LOSSES = "|".join(
    map(
        re.escape,
        dict.fromkeys([*registry.names("ppo"), *grid.grid_losses(config, "rl")]),
    )
)
CLASSIFICATION_LOSSES = "|".join(
    map(
        re.escape,
        dict.fromkeys(
            [
                *registry.names("supervised"),
                *grid.grid_losses(config, "classification"),
            ]
        ),
    )
)
# The trainers import the same modules; referenced by name in the shell templates (a new
# module reruns no cell of a built-in loss).
LOSS_MODULE_ARGS = " ".join(
    f"--loss-module {shlex.quote(m)}" for m in config.get("loss_modules") or []
)
# How the analysis draws each loss (labels, colours: its env has no torch to import a
# user's module with); a param of the analysis rules, so a new label redraws.
LOSS_STYLES = json.dumps(
    {
        kind: registry.styles(kind, grid.variant_labels(config, half))
        for half, kind in grid.LOSS_KIND.items()
    }
)
# The grid's sweeps (the sensitivity figure, claim D): a param of the rules that read them.
SWEEPS = grid.sweeps_json(config)
# Simulated grids per seed count of the workflow's seed plan (Monte Carlo error about
# +-0.06 in power at 80%); `make power` uses 200.
SEED_PLAN_GRIDS = 40
NONINFERIORITY_MARGIN = grid.claims_settings(config)["noninferiority_margin"]
RL_CANDIDATE = grid.candidate(config, "rl")
CLASSIFICATION_CANDIDATE = grid.candidate(config, "classification")


def rl_code(wildcards):
    base = grid.base_loss(config, "rl", wildcards.loss)
    return fingerprint.cell_fingerprint("rl", base)


def classification_code(wildcards):
    base = grid.base_loss(config, "classification", wildcards.loss)
    return fingerprint.cell_fingerprint("classify", base)


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
    ] + [f"{TABLES}/shot_accuracy.{ext}" for ext in ("md", "csv")]


def has_rl():
    return bool(grid.rl_runs(config))


def has_classification():
    return bool(grid.classification_runs(config))


def has_rl_sweeps():
    return has_rl() and bool(json.loads(SWEEPS)["rl"])


def has_classification_sweeps():
    return has_classification() and bool(json.loads(SWEEPS)["classification"])


def results():
    """Every result the grid ends with, named once: (what the final message calls it, the
    file `rule all` asks for, or None for a line only, and what lies beside it). A new
    figure is its rule plus one line here."""
    rows = []
    if has_rl():
        rows += [
            ("figure (Figure 2)", f"{FIGURES}/rl_training_curves.png", "(.pdf)"),
            (
                "aggregate scores",
                f"{FIGURES}/rl_aggregate.png",
                f"{FIGURES}/rl_aggregate.csv",
            ),
            ("score profiles", f"{FIGURES}/rl_performance_profile.png", "(.csv)"),
            (
                "RL tables",
                None,
                f"{TABLES}/rl_final.csv (per env x loss), rl_*.parquet",
            ),
            ("exploration figure", f"{FIGURES}/rl_exploration.png", "(.pdf)"),
        ]
    if has_rl_sweeps():
        rows.append(
            (
                "sensitivity figure",
                f"{FIGURES}/rl_sensitivity.png",
                "(.pdf, .csv; claim D)",
            )
        )
    if has_classification_sweeps():
        rows.append(
            (
                "sensitivity figure",
                f"{FIGURES}/classification_sensitivity.png",
                "(.pdf, .csv)",
            )
        )
    if has_classification():
        for experiment in config["classification"]["experiments"]:
            rows.append(
                (
                    "precision table",
                    f"{TABLES}/precision_{experiment}.md",
                    "(.tex, .csv)",
                )
            )
        rows.append(("shot accuracy", f"{TABLES}/shot_accuracy.md", "(.csv)"))
        rows.append(
            ("precision figure", f"{FIGURES}/precision_by_class_frequency.png", "")
        )
    rows += [
        ("claims checked", f"{TABLES}/claims.md", "(.csv)"),
        ("seeds needed", f"{TABLES}/seed_plan.md", "(make power: finer)"),
        ("runs", None, f"{RESULTS}/rl/, {RESULTS}/classification/"),
    ]
    return rows


def all_targets():
    return [target for _, target, _ in results() if target is not None]


def final_message():
    lines = ["", "Done. Results:"]
    for label, target, beside in results():
        where = ", ".join(p for p in (target, beside) if p and not p.startswith("("))
        extra = beside if beside.startswith("(") else ""
        lines.append(f"  {label}:{' ' * (19 - len(label))} {where} {extra}".rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------- training-rule helpers
def rl_hparams(wildcards):
    """The cell's resolved hyperparameters as canonical JSON: Snakemake's params trigger
    reruns exactly the cells whose values change."""
    return grid.cell_json(grid.rl_cell(config, wildcards.env, wildcards.loss))


def rl_resource(key):
    """Resources of an RL job by its env's suite (config rl.resources; not params)."""
    return lambda wildcards: grid.rl_resources(config, wildcards.env)[key]


def rl_gpus(wildcards):
    """1 for a cell that trains on a GPU, 0 for a cpu one (Gymnasium, MinAtar, demo)."""
    return int(grid.rl_uses_gpu(config, wildcards.env))


def classification_gpus(wildcards):
    return int(grid.classification_uses_gpu(config))


def classification_hparams(wildcards):
    """The cell's resolved hyperparameters as canonical JSON (see rl_hparams)."""
    return grid.cell_json(
        grid.classification_cell(
            config, wildcards.dataset, wildcards.experiment, wildcards.loss
        )
    )


def classification_resource(key):
    """Resources of a classification job by dataset kind (classification.resources)."""
    return lambda wildcards: grid.classification_resources(config, wildcards.dataset)[
        key
    ]


def caltech_tree(root):
    return os.path.join(root, "caltech256", "256_ObjectCategories")


def dataset_files(wildcards):
    """Caltech-256 needs its image tree (fetched by fetch_caltech256), CIFAR-LT its binary
    archive (fetch_cifar); the stand-ins are built from data shipped inside scikit-learn; a
    list-file dataset is the user's own tree (checked by the prepare job)."""
    spec = grid.dataset_cell(config, wildcards.dataset)
    if spec["kind"] == "caltech256":
        return [caltech_tree(spec["root"])]
    if spec["kind"] == "cifar_lt":
        return [os.path.join(spec["root"], CIFAR_ARCHIVES[spec["variant"]].file)]
    return []


def prepared_index(dataset):
    """The prepare_dataset job's index: split manifest and decoded cache are ready."""
    return f"{RESULTS}/data/{dataset}.json"


def dataset_hparams(wildcards):
    """The dataset section of the cells (split, sizes): what the manifest and cache are."""
    return grid.cell_json({"dataset": grid.dataset_cell(config, wildcards.dataset)})


def prepare_threads(wildcards):
    """The decoding processes: run.num_workers, else (null) the dataset's job threads."""
    workers = grid.classification_run_settings(config).get("num_workers")
    return max(
        1,
        workers or grid.classification_resources(config, wildcards.dataset)["threads"],
    )


def parent_of_input(name):
    """A params function: the folder of the rule's first `name` input (the tables dir)."""
    return lambda wildcards, input: os.path.dirname(input[name][0])


def parent_of_output(wildcards, output):
    return os.path.dirname(output[0])
