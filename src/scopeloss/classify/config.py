"""Classification hyperparameters resolved and validated, from the declarations of
``scopeloss.params`` (every key's type, default, allowed values and source; the per-dataset
and per-experiment departures).

A run's cell (``scopeloss.cells.ClassifierCell``) records as ``{"dataset": {...},
"experiment": {...}, "loss": {...}}`` (docs/CONTRACT.md). ``resolve`` starts from the declared defaults of the named dataset and
experiment, overlays the ``--hparams`` JSON and then each ``--set section.key=value``, and
rejects any unknown section or key by name, listing the allowed ones; every value is
checked by its declaration, then the rules across keys (``check``), before any data loads.

Run settings (``RUN``: device, compile, channels_last, torch_threads, num_workers,
checkpoint_every, cache_dir, deterministic, tensorboard) say how and where a run executes,
not what it learns: they come from ``--run JSON`` and ``--set run.key=value``
(``resolve_run``), are not part of a checkpoint's identity, and changing them keeps
checkpoints valid. Naming one of them in ``experiment``/``dataset`` is an error that says
where it moved.
"""

from __future__ import annotations

import copy
from typing import Any

from scopeloss import config_keys as K
from scopeloss import params as P
from scopeloss.cells import CellLoss, ClassifierCell
from scopeloss.overrides import load_hparams, load_run, parse_set, split_run  # noqa: F401  (the CLIs')
from scopeloss.config_keys import SEED_MAX, ConfigError, check_seed  # noqa: F401  (re-exported)


def _defaults(params: dict[str, K.Param]) -> dict[str, Any]:
    return {k: copy.deepcopy(p.default) for k, p in params.items()}


AUGMENTATION = _defaults(P.CL_AUGMENTATION)  # paper, Table 5
CUDA = _defaults(P.CL_CURRICULUM)  # the CUDA curriculum (Ahn, Ko, Yun, ICLR 2023)
RUN = _defaults(P.CL_RUN)
DATASETS: dict[str, dict[str, Any]] = {
    name: {**_defaults(P.CL_DATASET), **_defaults(P.CL_DATASET_KIND[dep["kind"]]), **dep}
    for name, dep in P.DATASET_DEFAULTS.items()}
EXPERIMENTS: dict[str, dict[str, Any]] = {
    name: {**_defaults(P.CL_EXPERIMENT), **{k: v for k, v in dep.items() if k != "cuda"},
           "augmentation": copy.deepcopy(AUGMENTATION), "cuda": {**CUDA, **dep.get("cuda", {})}}
    for name, dep in P.EXPERIMENT_DEFAULTS.items()}
# A run setting written in the experiment or dataset section is named as such.
MOVED = {(section, k) for section in ("experiment", "dataset") for k in P.CL_RUN}
SAMPLINGS = P.CL_EXPERIMENT["sampling"].choices
SECTIONS = ("dataset", "experiment", "loss")


def _check_name(what: str, name: str, allowed) -> None:
    if name not in allowed:
        raise ConfigError(f"unknown {what} {name!r}; allowed: {', '.join(allowed)}")


def _checked_overrides(source: dict, where: str = "") -> dict:
    """``--hparams``/``--set``-shaped overrides: known sections, no run setting among them."""
    for section, values in K.check_sections(source, SECTIONS, where).items():
        for key in values or {}:
            if (section, key) in MOVED:
                raise ConfigError(f"{section}.{key} is a run setting now, not a hyperparameter: "
                                  f"pass it as run.{key} (--run JSON or --set run.{key}=VALUE)")
    return source


def dataset_defaults(dataset: str, *given: dict | None) -> dict:
    """The declared defaults of ``dataset``: a built-in name's, or, for a name of the user's
    own (``classification.dataset_specs.<name>: {kind: ..., ...}``), its kind's."""
    if dataset in DATASETS:
        return DATASETS[dataset]
    kinds = [g["kind"] for g in given if isinstance(g, dict) and g.get("kind")]
    if kinds and kinds[-1] in P.DATASET_CONFIGS:
        kind = kinds[-1]
        return {**_defaults(P.CL_DATASET), **_defaults(P.CL_DATASET_KIND[kind]), "kind": kind}
    raise ConfigError(f"unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}, or a "
                      f"name of your own with dataset.kind one of {', '.join(P.DATASET_CONFIGS)}")


def resolve(dataset: str, experiment: str, loss: str, hparams: dict | None = None,
            sets: dict | None = None) -> ClassifierCell:
    """The typed, checked cell of one run: the declared defaults of the dataset and
    experiment, then ``hparams`` (``--hparams``), then ``sets`` (``--set``), merged by
    ``config_keys.merge``; ConfigError naming any bad section, key or value."""
    base = dataset_defaults(dataset, (hparams or {}).get("dataset"), (sets or {}).get("dataset"))
    if experiment not in EXPERIMENTS and not (hparams or {}).get("experiment"):
        raise ConfigError(f"unknown experiment {experiment!r}; allowed: "
                          f"{', '.join(EXPERIMENTS)}, or a name of your own with its "
                          "experiment section in --hparams (classification.experiment_specs)")
    # an experiment of the user's own starts from the declared defaults (plain's)
    cfg = {"dataset": base, "experiment": EXPERIMENTS.get(experiment, EXPERIMENTS["plain"]),
           "loss": {}}
    for where, source in ("--hparams", hparams or {}), ("--set", sets or {}):
        cfg = K.merge(cfg, _checked_overrides(source, where))
    cfg = {section: values or {} for section, values in cfg.items()}
    return check(cfg, dataset, experiment, loss)


def resolve_dataset(dataset: str, values: dict | None = None) -> dict:
    """The dataset section alone (what a split manifest and decoded cache are keyed by):
    the named dataset's declarations with ``values`` over them, checked."""
    values = _checked_overrides({"dataset": values or {}})["dataset"]
    return check_dataset(K.merge(dataset_defaults(dataset, values), values or {}), dataset)


def check_dataset(d: dict, dataset: str) -> dict:
    """The dataset section checked by its declarations and across keys."""
    if dataset in DATASETS and d.get("kind") != DATASETS[dataset]["kind"]:
        raise ConfigError(f"dataset.kind {d.get('kind')!r} does not match --dataset {dataset!r}")
    d = K.check_section("dataset", d, {**P.CL_DATASET, **P.CL_DATASET_KIND[d["kind"]]})
    if d["resize_size"] < d["image_size"]:
        raise ConfigError(f"dataset.resize_size ({d['resize_size']}) must be >= "
                          f"dataset.image_size ({d['image_size']})")
    if d["val_fraction"] + d["test_fraction"] >= 1:
        raise ConfigError(f"dataset.val_fraction ({d['val_fraction']}) and "
                          f"dataset.test_fraction ({d['test_fraction']}) must sum to less than 1")
    return d


def check(cfg: dict, dataset: str, experiment: str, loss: str) -> ClassifierCell:
    """Every value by its declaration, then the rules across keys; nothing is loaded."""
    e = dict(cfg["experiment"])
    subsections = {k: K.check_section(f"experiment.{k}", e.pop(k), params)
                   for k, params in P.CL_SUBSECTIONS.items()}
    e = {**K.check_section("experiment", e, P.CL_EXPERIMENT), **subsections}
    cell_loss = CellLoss.of("supervised", loss, cfg["loss"])
    if e["cuda"]["enabled"] and not e["augment"]:
        raise ConfigError("experiment.cuda.enabled needs experiment.augment: true (CUDA sets the "
                          "strength of the training augmentation)")
    return ClassifierCell(dataset, experiment, P.DatasetConfig.of(check_dataset(cfg["dataset"], dataset)),
                          P.ExperimentConfig.from_mapping(e), cell_loss)


# --- run settings -----------------------------------------------------------------------
def resolve_run(cell: ClassifierCell | None = None, run: dict | None = None,
                sets: dict | None = None) -> dict:
    """Resolved run settings, the shape of ``scopeloss.rl.config.resolve_run``: the declared
    defaults, ``run`` (``--run``), then ``sets`` (``--set run.*``), every null filled in for
    this machine (threads, decoding processes; ``device`` stays as requested, resolved when
    the job picks its device). ``cell``, the run's cell, decides no classifier run setting
    today. Resolving a resolved mapping gives it back unchanged."""
    from scopeloss.devices import check_threads, job_cores  # torch: only a job resolves them

    out = K.run_settings(run, sets, P.CL_RUN)
    check_threads(out, ("torch_threads",), "run")  # num_workers: processes, may exceed
    cores = job_cores()
    if out["torch_threads"] is None:
        out["torch_threads"] = cores
    if out["num_workers"] is None:
        out["num_workers"] = min(8, cores)
    return out
