# Scope Loss reproduction: the experiment grid of config.yaml (see README.md).
#
#   snakemake --cores all                                   # the paper's grid
#   snakemake --cores all --configfile presets/demo.yaml    # CPU-scale demo (make demo)
#
# Presets are overlays: Snakemake merges them over config.yaml key by key (lists replace).
# Everything that computes lives in src/scopeloss; rules only call its CLIs.

import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


# The workflow's own helpers (config resolution) come from src/, without installing.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from scopeloss import grid
from scopeloss import fingerprint, registry
from scopeloss.overrides import numbers_as_yaml12
from scopeloss.classify.cifar import ARCHIVES as CIFAR_ARCHIVES

# A YAML syntax error in config.yaml is reported with its file and line (Snakemake's own
# message names neither). For --configfile overlays Snakemake fails before this file is
# read: `python -m scopeloss.grid check OVERLAY.yaml` names the file and line.
if not os.path.isfile("config.yaml"):
    raise WorkflowError(
        f"config.yaml not found in {os.getcwd()}: run Snakemake from the checkout's root "
        "(or pass --directory CHECKOUT); overlays (--configfile) go over it, not instead"
    )
try:
    grid.read_yaml("config.yaml")
except grid.ConfigError as err:
    raise WorkflowError(str(err)) from None


configfile: "config.yaml"


# Overlays: each one's own YAML checks (a key given twice, an empty file; Snakemake reports
# a syntax error itself), and numbers like 1e6 read as numbers, as in --set.
for overlay in workflow.overwrite_configfiles or ():
    try:
        grid.read_yaml(overlay)
    except grid.ConfigError as err:
        raise WorkflowError(str(err)) from None
config.update(numbers_as_yaml12(dict(config)))


report: "workflow/report/workflow.rst"


try:
    grid.check_run_settings_placement(config)
except grid.ConfigError as err:
    raise WorkflowError(str(err)) from None
try:
    validate(config, "workflow/schemas/config.schema.yaml")
except WorkflowError as err:
    raise WorkflowError(grid.describe_validation_error(err)) from None
try:
    grid.load_loss_modules(
        config
    )  # a user's losses, registered before any name is checked
    grid.check_config(config)
    grid.check_cells(config)  # every value a job would reject, before any job
except grid.ConfigError as err:
    raise WorkflowError(str(err)) from None


include: "workflow/rules/common.smk"


wildcard_constraints:
    seed=r"\d+",
    env=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    experiment=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


include: "workflow/rules/rl.smk"
include: "workflow/rules/classify.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),


onsuccess:
    print(final_message())
