"""The experiment grid of config.yaml: overlay merging, name checks, per-cell hyperparameters.

The Snakemake workflow calls these (Snakemake itself is never imported here), and so can
any script that wants the exact hyperparameters a run of the grid gets:

    cfg = load_config("config.yaml", "presets/demo.yaml")   # preset overlays, merged
    check_config(cfg)                                       # names exist, suites covered
    rl_cell(cfg, "Pong", "scope")        # {"env": {...}, "ppo": {...}, "loss": {...}}
    classification_cell(cfg, "caltech256", "plain", "pel")

A cell's hyperparameters are plain JSON values with sorted keys, so the workflow can pass
them as one string in a rule's ``params``: Snakemake reruns a job when its params change,
which is how editing one cell reruns that cell and nothing else.

Run settings (``rl.run``, ``classification.run``: device, compile, threads, data workers,
checkpoint cadence, cache location) say how and where a job runs, not what it learns. They
are not part of any cell: the workflow passes them outside ``--hparams`` and changing them
reruns nothing (``rl_run_settings``, ``classification_run_settings``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from scopeloss import params, registry
from scopeloss.config_files import (CLASSIFICATION_RUN_KEYS, RL_RUN_KEYS,  # noqa: F401
                                    check_run_settings_placement, describe_validation_error,
                                    load_config, read_yaml)
from scopeloss.config_keys import ConfigError, check_section, merge  # noqa: F401  (merge: the overlays' rule)
from scopeloss.grid_losses import (LOSS_KIND, section_of, base_loss, grid_losses,  # noqa: F401
                                   loss_table, sweep_members, sweeps_json, variant_labels)

# The PPO keys of docs/CONTRACT.md; the same keys inside rl.env_specs.<ENV> override them.
PPO_KEYS = tuple(params.PPO)
# Run settings: how and where a job runs (never a rerun trigger, never a checkpoint key).


# ----------------------------------------------------------------------------- loading
def check_files(path: str | Path, *overlays: str | Path,
                schema: str | Path = "workflow/schemas/config.schema.yaml") -> dict:
    """Everything the workflow checks at start-up, for config files given by path: YAML
    syntax (file and line), run settings in their place, the schema, names and suites."""
    import jsonschema

    config = load_config(path, *overlays)
    load_loss_modules(config)
    check_run_settings_placement(config)
    try:
        jsonschema.Draft202012Validator(read_yaml(schema)).validate(config)
    except jsonschema.ValidationError as err:
        raise ConfigError(describe_validation_error(err)) from None
    check_config(config)
    check_cells(config)
    return config


def check_cells(config: Mapping) -> None:
    """Every cell of the grid resolved by its trainer's own resolver (torch-free: the
    declarations of scopeloss.params and the rules across keys), so that a value a job would
    reject stops the workflow before any job, naming the cell and the key. Game names are
    checked by the jobs (they need the env packages)."""
    for cell in dict.fromkeys(run[:-1] for run in rl_runs(config)):  # each cell once, not per seed
        rl_cell(config, *cell)
    for dataset, experiment, loss in dict.fromkeys(
            run[:-1] for run in classification_runs(config)):
        classification_cell(config, dataset, experiment, loss)


def main(argv: list[str] | None = None) -> int:
    """``python -m scopeloss.grid check [overlay.yaml ...] [--base config.yaml]``: what the
    workflow would reject, before a run. (Snakemake itself reports a YAML syntax error in a
    --configfile overlay without its file and line, before the Snakefile can help.)"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scopeloss.grid",
                                     description="check config files before a run")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="YAML syntax, schema, names: as the workflow does")
    check.add_argument("overlays", nargs="*", help="--configfile overlays, in order")
    check.add_argument("--base", default="config.yaml", help="the Snakefile's configfile")
    check.add_argument("--schema", default="workflow/schemas/config.schema.yaml")
    args = parser.parse_args(argv)
    files = [args.base, *args.overlays]
    try:
        config = check_files(*files, schema=args.schema)
    except (ConfigError, OSError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")  # a file, not an argument: no usage
    print(f"ok: {' + '.join(map(str, files))}: {len(rl_runs(config))} RL runs, "
          f"{len(classification_runs(config))} classifier runs")
    if config.get("loss_modules"):  # a user's losses, tried before any job runs them
        from scopeloss import loss_check

        lines = loss_check.check(loss_check.losses_of(config["loss_modules"]))
        print("\n".join(lines))
        if any(line.startswith("FAIL") for line in lines):
            parser.exit(2, f"{parser.prog}: error: a loss of loss_modules failed its check "
                           "(above): fix it before the run\n")
    return 0


# ----------------------------------------------------------------------------- checks
def _check_names(section: Mapping, prefix: str, listed: str, specs: str,
                 built_in: Mapping) -> None:
    """Every name of ``{prefix}.{listed}`` is built in (``built_in``, the declarations'
    table) or has a spec in ``{prefix}.{specs}``."""
    names = section.get(listed) or []
    table = {**built_in, **(section.get(specs) or {})}
    for name in names:
        if name not in table:
            allowed = ", ".join(sorted(map(str, table))) or "(none)"
            raise ConfigError(
                f"config key {prefix}.{listed}: unknown name {name!r}; it must be built in "
                f"or a key of {prefix}.{specs} (allowed: {allowed})"
            )


def load_loss_modules(config: Mapping) -> list[str]:
    """Import the user loss modules named in ``loss_modules`` (once each), so that their
    losses are registered before any name is checked; returns their source files."""
    return registry.load_modules(config.get("loss_modules"), "config key loss_modules")


def _check_losses(section: Mapping, prefix: str) -> None:
    """Every loss named in the grid is a registered loss of the half's kind or a variant
    declared in ``loss_specs`` or made by ``sweeps``; every spec sets only parameters its
    (base) loss takes; the candidate is a loss of the table."""
    table = loss_table(section, prefix)
    for name in section.get("losses") or []:
        if name not in table:
            registry.get(LOSS_KIND[prefix], name, f"config key {prefix}.losses")
    if section.get("candidate") is not None and section["candidate"] not in table:
        registry.get(LOSS_KIND[prefix], section["candidate"], f"config key {prefix}.candidate")


def check_config(config: Mapping) -> None:
    """What the JSON schema cannot say: every name listed in ``rl.envs``,
    ``classification.datasets`` and ``classification.experiments`` has a spec, every loss
    is known, and every suite / dataset kind in use has cluster resources."""
    rl = section_of(config, "rl")
    cl = section_of(config, "classification")
    _check_names(rl, "rl", "envs", "env_specs", params.ENV_TABLE)
    _check_names(cl, "classification", "datasets", "dataset_specs", params.DATASET_DEFAULTS)
    _check_names(cl, "classification", "experiments", "experiment_specs",
                 params.EXPERIMENT_DEFAULTS)
    _check_losses(rl, "rl")
    _check_losses(cl, "classification")
    for env in rl.get("envs") or []:
        suite = env_spec(config, env)["suite"]
        if suite not in (rl.get("resources") or {}):
            raise ConfigError(
                f"config key rl.resources: no entry for suite {suite!r} (used by rl.env_specs.{env})"
            )
    for dataset in cl.get("datasets") or []:
        kind = dataset_kind(config, dataset)
        if kind not in (cl.get("resources") or {}):
            raise ConfigError(
                f"config key classification.resources: no entry for dataset kind {kind!r} "
                f"(used by classification.dataset_specs.{dataset})"
            )


# ----------------------------------------------------------------------------- cells
def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    return value


def _lookup(table: Mapping, name: str, key: str) -> Mapping:
    if name not in table:
        raise ConfigError(f"config key {key}: unknown name {name!r} (allowed: {', '.join(sorted(table))})")
    return table[name]


def _spec(config: Mapping, section: str, specs: str, built_in: Mapping, name: str) -> dict:
    """``{section}.{specs}.<name>`` merged over ``name``'s entry in ``built_in`` (the
    declarations' table); a name of neither is an error."""
    table = {**built_in, **(section_of(config, section).get(specs) or {})}
    return merge(built_in.get(name, {}),
                 dict(_lookup(table, name, f"{section}.{specs}") or {}))


def env_spec(config: Mapping, env: str) -> dict:
    """An env's spec: ``rl.env_specs.<env>`` over its entry in the built-in env table
    (``params.ENV_TABLE``: suite and game); an env of neither is an error."""
    spec = _spec(config, "rl", "env_specs", params.ENV_TABLE, env)
    if "suite" not in spec or "game" not in spec:
        raise ConfigError(f"config key rl.env_specs.{env}: an env that is not built in needs "
                          f"suite and game (built in: {', '.join(params.ENV_TABLE)})")
    return spec


def dataset_spec(config: Mapping, dataset: str) -> dict:
    """``classification.dataset_specs.<dataset>`` over the dataset's declared departures."""
    return _spec(config, "classification", "dataset_specs", params.DATASET_DEFAULTS, dataset)


def experiment_spec(config: Mapping, experiment: str) -> dict:
    """``classification.experiment_specs.<experiment>`` over its declared departures."""
    return _spec(config, "classification", "experiment_specs", params.EXPERIMENT_DEFAULTS,
                 experiment)


def rl_cell(config: Mapping, env: str, loss: str) -> dict:
    """The resolved hyperparameters of one RL cell, in the ``--hparams`` shape of
    docs/CONTRACT.md, as the trainer resolves them: the declared defaults (``params``: the
    suite's departures, the env table), ``rl.ppo``, the env's spec (its PPO keys win for
    that env) and the loss's parameters. Every value whatever file sets it, so a value
    written out equal to its default is the same cell (reruns nothing)."""
    from scopeloss.rl import config as rl_config

    rl = section_of(config, "rl")
    spec = env_spec(config, env)
    ppo = dict(rl.get("ppo") or {})
    ppo.update({k: v for k, v in spec.items() if k in PPO_KEYS})
    env_keys = {k: v for k, v in spec.items() if k not in PPO_KEYS}
    raw = {"env": env_keys, "ppo": ppo, "loss": _loss_section(rl, "rl", loss)}
    try:
        return _sorted(rl_config.resolve(env, loss, raw, games=False).to_json())
    except ConfigError as err:
        raise ConfigError(f"config cell rl {env}/{loss} (rl.ppo, rl.env_specs.{env}, "
                          f"rl.loss_specs.{loss}): {err}") from None


def _loss_section(section: Mapping, prefix: str, loss: str) -> dict:
    """The parameters ``{prefix}.loss_specs.<loss>`` sets, with the base loss of a variant
    (``loss: BASE``; a null is the default: left out, so that writing one reruns nothing)."""
    table = loss_table(section, prefix)
    if loss not in table:
        registry.get(LOSS_KIND[prefix], loss, f"config key {prefix}.losses")
    return {k: v for k, v in table[loss].items() if v is not None}


def classification_cell(config: Mapping, dataset: str, experiment: str, loss: str) -> dict:
    """The resolved hyperparameters of one classification cell (CONTRACT.md shape), as the
    trainer resolves them from the declarations and the config's specs."""
    from scopeloss.classify import config as classify_config

    cl = section_of(config, "classification")
    raw = {"dataset": dataset_spec(config, dataset),
           "experiment": experiment_spec(config, experiment),
           "loss": _loss_section(cl, "classification", loss)}
    try:
        return _sorted(classify_config.resolve(dataset, experiment, loss, raw).to_json())
    except ConfigError as err:
        raise ConfigError(
            f"config cell classification {dataset}/{experiment}/{loss} "
            f"(classification.dataset_specs.{dataset}, experiment_specs.{experiment}, "
            f"loss_specs.{loss}): {err}") from None


def dataset_cell(config: Mapping, dataset: str) -> dict:
    """The resolved dataset section every cell of ``dataset`` holds (split, sizes, kind,
    root): what its split manifest and decoded cache are."""
    from scopeloss.classify import config as classify_config

    try:
        return _sorted(classify_config.resolve_dataset(dataset, dataset_spec(config, dataset)))
    except ConfigError as err:
        raise ConfigError(f"config key classification.dataset_specs.{dataset}: {err}") from None


def cell_json(cell: Mapping) -> str:
    """The canonical JSON text of a cell: sorted keys, no whitespace variation."""
    return json.dumps(_sorted(cell), sort_keys=True, separators=(",", ":"))


def rl_run_settings(config: Mapping) -> dict:
    """``rl.run``: the RL jobs' run settings (the same for every cell)."""
    return _sorted(dict(config["rl"].get("run") or {}))


def classification_run_settings(config: Mapping) -> dict:
    """``classification.run``: the classifier jobs' run settings."""
    return _sorted(dict(config["classification"].get("run") or {}))


def rl_uses_gpu(config: Mapping, env: str) -> bool:
    """Whether an RL cell's job needs a GPU: ``device: auto`` is cuda for Atari and
    Procgen, cpu for the small networks of Gymnasium and MinAtar envs."""
    device = rl_run_settings(config).get("device", "auto")
    if device == "auto":
        return rl_suite(config, env) in params.GPU_SUITES
    return device == "cuda"


def classification_uses_gpu(config: Mapping) -> bool:
    return classification_run_settings(config).get("device", "auto") != "cpu"


def rl_suite(config: Mapping, env: str) -> str:
    return env_spec(config, env)["suite"]


def rl_resources(config: Mapping, env: str) -> dict:
    """Cluster resources of an env's training job (by suite; not hyperparameters)."""
    return dict(config["rl"]["resources"][rl_suite(config, env)])


def dataset_kind(config: Mapping, dataset: str) -> str:
    kind = dataset_spec(config, dataset).get("kind")
    if kind is None:
        raise ConfigError(f"config key classification.dataset_specs.{dataset}: a dataset that "
                          f"is not built in needs kind")
    return kind


def classification_resources(config: Mapping, dataset: str) -> dict:
    return dict(config["classification"]["resources"][dataset_kind(config, dataset)])


def rl_runs(config: Mapping) -> list[tuple[str, str, int]]:
    """Every (env, loss, seed) of the grid, in config order."""
    rl = config["rl"]
    losses = grid_losses(config, "rl")
    return [(e, l, s) for e in rl["envs"] for l in losses for s in rl["seeds"]]  # noqa: E741


def classification_runs(config: Mapping) -> list[tuple[str, str, str, int]]:
    """Every (dataset, experiment, loss, seed) of the grid, in config order, without the
    double-correction cells (``double_correction``)."""
    cl = config["classification"]
    losses = grid_losses(config, "classification")
    return [
        (d, x, l, s)
        for d in cl["datasets"]
        for x in cl["experiments"]
        for l in losses  # noqa: E741
        if not double_correction(config, x, l)
        for s in cl["seeds"]
    ]


def double_correction(config: Mapping, experiment: str, loss: str) -> bool:
    """Whether the cell would correct for imbalance twice: a re-sampling experiment with a
    loss that re-weights by the natural class counts (a loss registered as needing them:
    inverse-frequency weights, Balanced Softmax's log-prior). Under re-sampling the batches
    are already re-balanced, so such a loss would correct twice (Ren et al. 2020 note that
    Balanced Softmax over-balances under class-balanced sampling): not in the grid."""
    spec = experiment_spec(config, experiment)
    base = base_loss(config, "classification", loss)
    return (registry.get("supervised", base).needs_counts
            and spec.get("sampling", "natural") != "natural")


def candidate(config: Mapping, half: str) -> str:
    """The loss the claims of ``half`` (rl, classification) are about (a required key)."""
    return config[half]["candidate"]


def claims_settings(config: Mapping) -> dict:
    """The ``claims`` section, checked, over its declared defaults."""
    given = check_section("claims", config.get("claims") or {}, params.CLAIMS)
    return {k: given.get(k, p.default) for k, p in params.CLAIMS.items()}


if __name__ == "__main__":
    raise SystemExit(main())
