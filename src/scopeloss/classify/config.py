"""Classification hyperparameters resolved and validated, from the declarations of
``scopeloss.params`` (every key's type, default, allowed values and source; the per-dataset
and per-experiment departures).

A run's hyperparameters are ``{"dataset": {...}, "experiment": {...}, "loss": {...}}``
(docs/CONTRACT.md). ``resolve`` starts from the declared defaults of the named dataset and
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

from scopeloss import overrides
from scopeloss import params as P
from scopeloss import registry
from scopeloss.overrides import load_hparams, parse_set  # noqa: F401  (re-exported for the CLI)
from scopeloss.params import SEED_MAX, ConfigError, check_seed  # noqa: F401  (re-exported)


def _defaults(params: dict[str, P.Param]) -> dict[str, Any]:
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


def _merge(base: dict, over: dict, where: str) -> dict:
    """Overlay ``over`` on ``base`` key by key; a key ``base`` lacks is an error."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if (where, key) in MOVED:
            raise ConfigError(f"{where}.{key} is a run setting now, not a hyperparameter: pass "
                              f"it as run.{key} (--run JSON or --set run.{key}=VALUE)")
        if key not in base:
            raise ConfigError(f"unknown key {where}.{key}; allowed: {', '.join(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key} must be a mapping, got {value!r}")
            out[key] = _merge(base[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve(dataset: str, experiment: str, loss: str, hparams: dict | None = None,
            sets: dict | None = None) -> dict:
    """The full, checked hyperparameters of one run."""
    _check_name("dataset", dataset, DATASETS)
    _check_name("experiment", experiment, EXPERIMENTS)
    base = {"dataset": DATASETS[dataset], "experiment": EXPERIMENTS[experiment], "loss": {}}
    cfg = copy.deepcopy(base)
    for source in (hparams or {}), (sets or {}):
        for section, values in P.check_sections(source, SECTIONS).items():
            if section == "loss":  # the loss's own parameters (checked by the registry)
                cfg["loss"].update(values or {})
            else:
                cfg[section] = _merge(cfg[section], values or {}, section)
    return check(cfg, dataset, loss)


def resolve_dataset(dataset: str, values: dict | None = None) -> dict:
    """The dataset section alone (what a split manifest and decoded cache are keyed by):
    the named dataset's declarations with ``values`` over them, checked."""
    _check_name("dataset", dataset, DATASETS)
    return check_dataset(_merge(DATASETS[dataset], values or {}, "dataset"), dataset)


def check_dataset(d: dict, dataset: str) -> dict:
    """The dataset section checked by its declarations and across keys."""
    if d.get("kind") != DATASETS[dataset]["kind"]:
        raise ConfigError(f"dataset.kind {d.get('kind')!r} does not match --dataset {dataset!r}")
    d = P.check_section("dataset", d, {**P.CL_DATASET, **P.CL_DATASET_KIND[d["kind"]]})
    if d["resize_size"] < d["image_size"]:
        raise ConfigError(f"dataset.resize_size ({d['resize_size']}) must be >= "
                          f"dataset.image_size ({d['image_size']})")
    if d["val_fraction"] + d["test_fraction"] >= 1:
        raise ConfigError(f"dataset.val_fraction ({d['val_fraction']}) and "
                          f"dataset.test_fraction ({d['test_fraction']}) must sum to less than 1")
    return d


def check(cfg: dict, dataset: str, loss: str) -> dict:
    """Every value by its declaration, then the rules across keys; nothing is loaded."""
    e = dict(cfg["experiment"])
    subsections = {k: P.check_section(f"experiment.{k}", e.pop(k), params)
                   for k, params in P.CL_SUBSECTIONS.items()}
    e = {**P.check_section("experiment", e, P.CL_EXPERIMENT), **subsections}
    base, loss_params = registry.cell_loss("supervised", loss, cfg["loss"])
    out = {"dataset": check_dataset(cfg["dataset"], dataset), "experiment": e,
           "loss": registry.resolved_loss(base, loss, loss_params)}
    if e["cuda"]["enabled"] and not e["augment"]:
        raise ConfigError("experiment.cuda.enabled needs experiment.augment: true (CUDA sets the "
                          "strength of the training augmentation)")
    return out


# --- run settings -----------------------------------------------------------------------
def load_run(arg: str | None) -> dict:
    """``--run``: an inline JSON object or a .json file (``scopeloss.overrides.load_run``),
    its errors as ConfigError."""
    try:
        return overrides.load_run(arg)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def resolve_run(run: dict | None = None, sets: dict | None = None) -> dict:
    """The checked run settings: ``RUN`` overlaid with ``--run`` and then ``--set run.*``."""
    cfg = dict(RUN)
    for source in (run or {}), (sets or {}):
        if not isinstance(source, dict):
            raise ConfigError(f"run settings must be a mapping, got {source!r}")
        cfg.update(P.check_section("run", source, P.CL_RUN))
    return cfg


def split_sets(sets: dict) -> tuple[dict, dict]:
    """``--set`` overrides -> (hyperparameter overrides, run-setting overrides)."""
    sets = dict(sets or {})
    run = sets.pop("run", {})
    if not isinstance(run, dict):
        raise ConfigError(f"--set run must name a key (run.KEY=VALUE), got {run!r}")
    return sets, run


def effective_run(run: dict) -> dict:
    """The null defaults of ``run`` filled in (device stays as requested)."""
    from scopeloss.devices import check_threads, job_cores  # torch: only a job resolves them

    check_threads(run, ("torch_threads",), "run")  # num_workers: processes, may exceed
    cores = job_cores()
    out = dict(run)
    if out["torch_threads"] is None:
        out["torch_threads"] = cores
    if out["num_workers"] is None:
        out["num_workers"] = min(8, cores)
    return out
