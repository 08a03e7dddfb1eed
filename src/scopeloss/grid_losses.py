"""The losses of a grid's half (``rl``, ``classification``): the registered ones, the named
variants of ``loss_specs`` and the variants ``sweeps`` makes, each checked by
``registry.variant``; the workflow reads them through ``scopeloss.grid``."""

from __future__ import annotations

import json
from collections.abc import Mapping

from scopeloss import registry
from scopeloss.config_keys import ConfigError

# The loss kind of each half of the grid (scopeloss.registry).
LOSS_KIND = {"rl": "ppo", "classification": "supervised"}


def section_of(config: Mapping, name: str) -> Mapping:
    section = config.get(name)
    if not isinstance(section, Mapping):
        raise ConfigError(f"config key {name}: missing or not a mapping")
    return section




def loss_table(section: Mapping, prefix: str) -> dict[str, dict]:
    """Every loss the half's grid can name -> its spec: the registered losses (their
    ``loss_specs`` parameters), the named variants of ``loss_specs`` (``{loss: BASE, ...}``)
    and the variants ``sweeps`` makes. Each spec is checked by ``registry.variant``."""
    kind = LOSS_KIND[prefix]
    specs = dict(section.get("loss_specs") or {})
    for name, spec in specs.items():
        if spec is not None and not isinstance(spec, Mapping):
            raise ConfigError(f"config key {prefix}.loss_specs.{name}: must be a mapping of "
                              f"parameters, got {spec!r}")
        registry.variant(kind, name, spec, f"config key {prefix}.loss_specs.{name}")
    table = {name: dict(specs.get(name) or {}) for name in registry.names(kind)}
    table.update({name: dict(spec or {}) for name, spec in specs.items()})
    for member in sweep_members(section, prefix, table):
        if member["name"] in table and member["name"] != member["swept"]:
            spec = table[member["name"]]
            if spec != member["spec"]:
                raise ConfigError(
                    f"config key {prefix}.sweeps.{member['swept']}: the variant it makes for "
                    f"{member['param']} = {member['value']:g}, {member['name']!r}, is already "
                    f"a loss of another definition ({spec or 'registered'})")
        table.setdefault(member["name"], member["spec"])
    return table


def sweep_members(section: Mapping, prefix: str, table: Mapping | None = None) -> list[dict]:
    """The cells of ``{prefix}.sweeps``: ``{LOSS: {PARAM: [v1, v2, ...]}}`` varies one
    parameter at a time, the others as ``loss_specs.<LOSS>`` sets them. Each value is a
    member ``{swept, param, value, name, spec, default}``: the value the loss runs with
    already is the loss's own cell (``name`` = LOSS, ``default`` true; a member even when
    the list leaves it out: the sweep is compared with it); every other is the variant
    ``<LOSS>_<PARAM><value>`` (e.g. ``scope_alpha0.1``)."""
    kind = LOSS_KIND[prefix]
    sweeps = section.get("sweeps") or {}
    if not isinstance(sweeps, Mapping):
        raise ConfigError(f"config key {prefix}.sweeps: must be a mapping LOSS -> "
                          f"{{PARAM: [values]}}, got {sweeps!r}")
    specs = table if table is not None else section.get("loss_specs") or {}
    members = []
    for swept, by_param in sweeps.items():
        key = f"config key {prefix}.sweeps.{swept}"
        base_spec = dict(specs.get(swept) or {})
        if swept not in specs and swept not in registry.names(kind):
            registry.get(kind, swept, key)  # names the registered losses
        base, base_params = registry.variant(kind, swept, base_spec, key)
        if not isinstance(by_param, Mapping) or not by_param:
            raise ConfigError(f"{key}: must map a parameter of {base!r} to a list of values, "
                              f"got {by_param!r}")
        for param, values in by_param.items():
            where = f"{key}.{param}"
            registered = registry.get(kind, base).params.get(param)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: must be a non-empty list of values, got {values!r}")
            if len(set(map(str, values))) != len(values):
                raise ConfigError(f"{where}: a value is given twice: {values!r}")
            for value in values:
                spec = {**base_spec, param: value}
                _, used = registry.variant(kind, swept, spec, key)  # checks param and value
                own = used[param] == base_params[param]
                name = swept if own else f"{swept}_{param}{used[param]:g}"
                members.append({"swept": swept, "param": param, "value": used[param],
                                "name": name, "default": own, "registered": registered,
                                "spec": base_spec if own else {**spec, "loss": base}})
            if not any(m["default"] for m in members[-len(values):]):  # the loss's own cell
                members.append({"swept": swept, "param": param, "value": base_params[param],
                                "name": swept, "default": True, "registered": registered,
                                "spec": base_spec})
    return members


def grid_losses(config: Mapping, half: str) -> list[str]:
    """The losses of ``half``'s grid, in order: ``losses``, then each swept loss and the
    variants its sweep adds (a sweep's own cells need no listing)."""
    section = section_of(config, half)
    names = list(section.get("losses") or [])
    for member in sweep_members(section, half, loss_table(section, half)):
        for name in (member["swept"], member["name"]):
            if name not in names:
                names.append(name)
    return names


def base_loss(config: Mapping, half: str, name: str) -> str:
    """The registered loss a grid loss runs: itself, or the base of its variant."""
    section = section_of(config, half)
    spec = loss_table(section, half).get(name)
    return registry.variant(LOSS_KIND[half], name, spec, f"config key {half}.losses")[0]


def variant_labels(config: Mapping, half: str) -> dict[str, str]:
    """How tables and figures name each variant of the grid: the base's label and the
    parameters that differ from its defaults (e.g. ``Scope (alpha=0.1)``)."""
    kind, section = LOSS_KIND[half], section_of(config, half)
    table, labels = loss_table(section, half), {}
    for name in grid_losses(config, half):
        base, used = registry.variant(kind, name, table.get(name), f"{half}.losses")
        if base == name:
            continue
        loss = registry.get(kind, base)
        changed = ", ".join(f"{k}={v:g}" for k, v in used.items() if v != loss.params[k])
        labels[name] = f"{loss.label} ({changed or 'defaults'})"
    return labels


def sweeps_json(config: Mapping) -> str:
    """The grid's sweeps for the analysis: ``{half: [{swept, param, value, name, default},
    ...]}`` (the sensitivity figure and claim D)."""
    out = {}
    for half in LOSS_KIND:
        section = section_of(config, half)
        out[half] = [{k: m[k] for k in ("swept", "param", "value", "name", "default",
                                        "registered")}
                     for m in sweep_members(section, half, loss_table(section, half))]
    return json.dumps(out, sort_keys=True, separators=(",", ":"))
