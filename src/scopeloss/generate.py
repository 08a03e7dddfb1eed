"""Files generated from the declarations of ``scopeloss.params``: the workflow's JSON schema
(``workflow/schemas/config.schema.yaml``) and the reference table ``docs/parameters.md``.

    python -m scopeloss.generate schema > workflow/schemas/config.schema.yaml
    python -m scopeloss.generate docs > docs/parameters.md      # both: make generated

A test checks that both files are what this module writes, so they never drift from the
declarations.
"""

from __future__ import annotations

from scopeloss import registry
from scopeloss.config_keys import SEED_MAX, Param
from scopeloss.params import (CLAIMS, CL_AUGMENTATION, CL_CURRICULUM, CL_DATASET, CL_DATASET_KIND,
                              CL_EXPERIMENT, CL_RUN, CL_SUBSECTIONS, PPO, RL_ENV, RL_RUN,
                              SUITE_PPO_DEFAULTS, SUITES)



def _object(params: dict[str, Param], required: tuple[str, ...] = (), extra: dict | None = None
            ) -> dict:
    props = {k: p.schema() for k, p in params.items()}
    props.update(extra or {})
    out: dict = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = list(required)
    return out


_LOSS_NAME = {"type": "string", "pattern": registry.NAME.pattern}
_NUMBER = {"oneOf": [{"type": "null"}, {"type": "number"}]}


def _loss_fields(kind: str) -> dict:
    """A half's loss keys: the schema checks their shape; their names and parameters are
    checked against the registry, which a user's module extends (grid.check_config)."""
    loss_name, number = _LOSS_NAME, _NUMBER
    return {"losses": {"type": "array", "uniqueItems": True, "items": loss_name,
                       "description": "registered loss names; built-in: "
                                      + ", ".join(registry.names(kind))},
            "candidate": {**loss_name, "description": "the loss the claims are about"},
            "loss_specs": {"type": "object", "propertyNames": loss_name,
                           "additionalProperties": {
                               "type": "object",
                               "properties": {registry.VARIANT_KEY: {
                                   **loss_name, "description": "a named variant: the "
                                   "registered loss it runs"}},
                               "additionalProperties": number},
                           "description": "a loss's parameters (null = its default), or "
                                          "a named variant {loss: BASE, param: value}"},
            "sweeps": {"type": "object", "propertyNames": loss_name,
                       "additionalProperties": {
                           "type": "object", "minProperties": 1,
                           "additionalProperties": {"type": "array", "minItems": 1,
                                                    "items": {"type": "number"}}},
                       "description": "LOSS: {PARAM: [values]}: one cell per value, one "
                                      "parameter at a time (variants LOSS_PARAM<value>)"}}


def config_schema() -> dict:
    """The JSON schema of config.yaml (after preset overlays), from the declarations."""
    name = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
    names = {"type": "array", "uniqueItems": True, "items": name}
    seeds = {"type": "array", "minItems": 1, "uniqueItems": True,
             "items": {"type": "integer", "minimum": 0, "maximum": SEED_MAX}}
    resources = _object({k: Param("int", 1, d, low=0, open_low=True) for k, d in (
        ("runtime", "minutes"), ("mem_mb", "MB"), ("threads", "CPU cores per job"))},
        required=("runtime", "mem_mb", "threads"))
    env_keys: dict[str, Param] = {}
    for suite_params in RL_ENV.values():
        env_keys.update(suite_params)
    env_keys.pop("game")
    # suite and game: a built-in env has them (params.ENV_TABLE), a new one must name them
    # (scopeloss.grid.env_spec says so)
    env_spec = _object({**PPO, **env_keys}, extra={
        "suite": {"type": "string", "enum": list(SUITES)},
        "game": {"type": "string", "minLength": 1}})
    dataset_keys = dict(CL_DATASET)
    for extra in CL_DATASET_KIND.values():
        dataset_keys.update(extra)
    experiment = _object(CL_EXPERIMENT, extra={k: _object(v) for k, v in CL_SUBSECTIONS.items()})
    # Every hyperparameter and run setting has its default in params.py: the sections that
    # hold them are optional, and so is each key in them.
    rl = _object({}, required=("envs", "losses", "candidate", "seeds", "resources"), extra={
        "envs": names, **_loss_fields("ppo"),
        "seeds": seeds, "ppo": _object(PPO), "run": _object(RL_RUN),
        "env_specs": {"type": "object", "propertyNames": name, "additionalProperties": env_spec},
        "resources": {"type": "object", "propertyNames": {"enum": list(SUITES)},
                      "additionalProperties": resources}})
    cl = _object({}, required=("datasets", "experiments", "losses", "candidate", "seeds",
                               "resources"), extra={
        "datasets": names, "experiments": names, **_loss_fields("supervised"),
        "seeds": seeds, "run": _object(CL_RUN),
        "dataset_specs": {"type": "object", "propertyNames": name, "additionalProperties":
                          _object(dataset_keys)},
        "experiment_specs": {"type": "object", "propertyNames": name,
                             "additionalProperties": experiment},
        "resources": {"type": "object", "propertyNames": {"enum": list(CL_DATASET_KIND)},
                      "additionalProperties": resources}})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "config.yaml of the Scope Loss reproduction, after preset overlays. "
                           "GENERATED by `make generated` from "
                           "src/scopeloss/params.py: edit that, not this file.",
            **_object({}, required=("rl", "classification"), extra={
                "loss_modules": {"type": "array", "uniqueItems": True,
                                 "items": {"type": "string", "minLength": 1},
                                 "description": "your own loss modules: .py paths relative to "
                                                "the working directory, or module names"},
                "claims": _object(CLAIMS), "rl": rl, "classification": cl})}


def _table(title: str, params: dict[str, Param], defaults: dict | None = None) -> list[str]:
    rows = [f"### {title}", "", "| key | default | allowed | source | what |",
            "|---|---|---|---|---|"]
    for key, p in params.items():
        value = (defaults or {}).get(key, p.default)
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) \
            else str(value)
        rows.append(f"| `{key}` | `{shown}` | {p.allowed()} | {p.source} | {p.doc} |")
    return rows + [""]


def _loss_table(kind: str, half: str) -> list[str]:
    """The built-in losses of ``kind``: their parameters (``{half}.loss_specs.<LOSS>``)."""
    rows = [f"### losses ({half}.losses; parameters in {half}.loss_specs.<LOSS>)", "",
            "Registered in `scopeloss.losses`; a module of your own adds to them "
            "(`loss_modules`, docs/CONTRACT.md).", "",
            "| loss | parameters (defaults) | needs | sampling | what |",
            "|---|---|---|---|---|"]
    for name, loss in registry.losses(kind).items():
        if loss.module is not None:
            continue
        shown = ", ".join(f"`{k}: {v:g}`" for k, v in loss.params.items()) or "none"
        what = (loss.function.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        what = " ".join(what.split()).replace("|", "\\|")
        needs = ", ".join(loss.needs) or "—"
        if loss.eval_logits is not None:
            needs += "; eval_logits"
        rows.append(f"| `{name}` | {shown} | {needs} | {loss.sampling} | {what} |")
    return rows + [""]


def parameters_markdown() -> str:
    """docs/parameters.md: every key with its default, allowed values, source and meaning."""
    lines = ["# Parameters", "",
             "GENERATED by `make generated` (`scopeloss.generate`) from `src/scopeloss/params.py`, "
             "the one declaration of every hyperparameter and run setting (types, defaults, "
             "allowed values, sources). The workflow's schema is generated from the same "
             "declarations, and both trainers check their inputs with them.", "",
             "## RL (`rl.ppo`, `rl.env_specs.<ENV>`, `rl.loss_specs`, `rl.run`)", ""]
    lines += _table("ppo (defaults of Atari; other suites below)", PPO)
    for suite, departures in SUITE_PPO_DEFAULTS.items():
        lines.append(f"* {suite}: " + ", ".join(f"`{k}: {v}`" for k, v in departures.items()))
    lines.append("")
    for suite, params in RL_ENV.items():
        lines += _table(f"env, suite {suite}", params)
    lines += _loss_table("ppo", "rl")
    lines += _table("run settings (rl.run: how a job runs, never a rerun trigger)", RL_RUN)
    lines += ["## Classification (`classification.dataset_specs`, `experiment_specs`, "
              "`loss_specs`, `run`)", ""]
    lines += _table("dataset", CL_DATASET)
    for kind, params in CL_DATASET_KIND.items():
        if params:
            lines += _table(f"dataset, kind {kind}", params)
    lines += _table("experiment (defaults of `plain`, Table 1)", CL_EXPERIMENT)
    lines += _table("experiment.augmentation (Table 5)", CL_AUGMENTATION)
    lines += _table("experiment.cuda (the CUDA curriculum)", CL_CURRICULUM)
    lines += _loss_table("supervised", "classification")
    lines += _table("run settings (classification.run)", CL_RUN)
    lines += ["## Claims (`claims`)", ""]
    lines += _table("claims: settings of the verdicts, declared before the data", CLAIMS)
    lines += VARIANTS_AND_SWEEPS
    return "\n".join(lines)


VARIANTS_AND_SWEEPS = [
    "## Loss variants and sweeps", "",
    "Both halves (`rl`, `classification`) take the same two keys beside `losses`:", "",
    "* **A named variant** is a loss of its own: `loss_specs.<NAME>: {loss: BASE, PARAM: "
    "value, ...}` runs the registered loss BASE (built-in or from `loss_modules`) with those "
    "parameters (the others at BASE's defaults). List NAME in `losses` (or make it the "
    "`candidate`) like any loss: its cells have their own directories "
    "(`results/rl/<ENV>/<NAME>/`), identity and code fingerprint (BASE's), and its "
    "`summary.json` records `hparams.loss = {loss: BASE, PARAM: value, ...}` (every "
    "parameter). Tables and figures label it `BASE label (PARAM=value)`. NAME may not be a "
    "registered loss's name.",
    "* **A sweep** makes a parameter a grid axis: `sweeps.<LOSS>: {PARAM: [v1, v2, ...]}` "
    "adds LOSS and one variant `<LOSS>_<PARAM><value>` per value (e.g. `scope_alpha0.1`) to "
    "the grid without listing them; the value LOSS runs with already is LOSS's own cell "
    "(and a member of the sweep even when the list leaves it out). Several parameters are "
    "swept one at a time, the others as `loss_specs.<LOSS>` sets them. Adding a value plans "
    "only its cells. The sweep's cells are drawn in `figures/rl_sensitivity.png` (RL) and "
    "tested in claim D of `claims.md` (the default value against the best of the sweep); "
    "claims A-C leave the added variants out.",
    "* Refused before any job, naming the key: a variant of an unknown loss, a parameter "
    "its base does not take, a name that shadows a registered loss, an empty or repeated "
    "sweep list, a sweep value whose variant name is already another loss.", ""]


def schema_yaml() -> str:
    import yaml

    return ("# GENERATED by `make generated` (scopeloss.generate) from src/scopeloss/params.py;\n"
            "# edit the declarations there, then regenerate (a test checks this file).\n"
            + yaml.safe_dump(config_schema(), sort_keys=False, width=100))


def main(argv: list[str] | None = None) -> int:
    """``python -m scopeloss.generate schema|docs``: print a generated file."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m scopeloss.generate",
                                     description="print a file generated from scopeloss.params")
    parser.add_argument("what", nargs="?", default="docs", choices=("schema", "docs"))
    args = parser.parse_args(argv)
    sys.stdout.write(schema_yaml() if args.what == "schema" else parameters_markdown() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
