"""How a configuration key is declared and checked: ``Param`` (type, default, allowed values,
source, doc), the dataclass field that carries it (``param`` and its short forms),
``declarations`` (a section's keys, read off its fields), ``Section.from_mapping`` (a checked
mapping as its section), the one merge rule and the one message style (``ConfigError``:
``KEY must be ALLOWED, got VALUE``).

The sections themselves, the declarations of every key, are ``scopeloss.params``.
This module imports neither torch nor any env package: the Snakefile reads it at start-up.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEED_MAX = 2**32 - 1  # numpy's seed range


class ConfigError(ValueError):
    """A config value, CLI value or input file the pipeline cannot run; the message names
    the key (or file) and what is allowed."""


def check_seed(seed, key: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"{key} must be an integer in 0..{SEED_MAX}, got {seed!r}")
    return seed


@dataclass(frozen=True)
class Param:
    """One key. ``kind``: int, float, bool, str or pair (``[mean, std]``, two finite numbers,
    std >= 0). ``low``/``high`` bound numbers (``open_low``/``open_high``: exclusive);
    ``choices`` lists the allowed strings; ``nullable`` allows null (meaning in ``doc``)."""

    kind: str
    default: Any
    doc: str
    source: str = "ours"
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def allowed(self) -> str:
        """What the value may be, in words (the second half of every error message)."""
        if self.kind == "bool" and self.choices:  # a switch with named modes
            text = f"true, false or one of {', '.join(self.choices)}"
        elif self.kind == "bool":
            text = "true or false"
        elif self.choices:
            text = f"one of {', '.join(self.choices)}"
        elif self.kind == "str":
            text = "a non-empty string"
        elif self.kind == "pair":
            text = "[mean, std]: two finite numbers, std >= 0"
        else:
            text = _number_words(self)
        return f"null or {text}" if self.nullable else text

    def check(self, key: str, value: Any) -> Any:
        """``value`` if allowed (ints accepted for floats, integral floats for ints), else a
        ConfigError naming ``key``."""
        if value is None and self.nullable:
            return None
        if not self._ok(value):
            raise ConfigError(f"{key} must be {self.allowed()}, got {value!r}")
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        return list(value) if self.kind == "pair" else value

    def _ok(self, v: Any) -> bool:
        if self.kind == "bool":
            return isinstance(v, bool) or (isinstance(v, str) and v in self.choices)
        if self.kind == "str":
            return isinstance(v, str) and v != "" and (not self.choices or v in self.choices)
        if self.kind == "pair":
            return (isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_finite, v))
                    and v[1] >= 0)
        if not _finite(v) or (self.kind == "int" and not float(v).is_integer()):
            return False
        if self.low is not None and (v <= self.low if self.open_low else v < self.low):
            return False
        return self.high is None or (v < self.high if self.open_high else v <= self.high)

    def schema(self) -> dict:
        """This key as JSON Schema (the workflow's config.schema.yaml)."""
        if self.kind == "bool":
            s: dict = ({"oneOf": [{"type": "boolean"}, {"enum": list(self.choices)}]}
                       if self.choices else {"type": "boolean"})
        elif self.kind == "str":
            s = {"type": "string", **({"enum": list(self.choices)} if self.choices
                                      else {"minLength": 1})}
        elif self.kind == "pair":
            s = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}
        else:
            s = {"type": "integer" if self.kind == "int" else "number"}
            if self.low is not None:
                s["exclusiveMinimum" if self.open_low else "minimum"] = self.low
            if self.high is not None:
                s["exclusiveMaximum" if self.open_high else "maximum"] = self.high
        s["description"] = self.doc
        return {"oneOf": [{"type": "null"}, s], "description": self.doc} if self.nullable else s


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number_words(p: Param) -> str:
    noun = "an integer" if p.kind == "int" else "a finite number"
    if p.kind == "int" and p.low == 0 and p.open_low and p.high is None:
        return "a positive integer"
    if p.low is not None and p.high is not None:
        left, right = "(" if p.open_low else "[", ")" if p.open_high else "]"
        return f"{noun} in {left}{_num(p.low)}, {_num(p.high)}{right}"
    if p.low is not None:
        return f"{noun} {'>' if p.open_low else '>='} {_num(p.low)}"
    if p.high is not None:
        return f"{noun} {'<' if p.open_high else '<='} {_num(p.high)}"
    return noun


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# --------------------------------------------------------------------------- fields
# A section's key is a dataclass field whose metadata holds its Param. The default lives in
# the Param (the resolver fills every key, so the dataclass needs none); the annotation must
# agree with the kind (``declarations`` checks it).
def param(kind: str, default: Any, doc: str, source: str = "ours", **kw) -> Any:
    """A declared key: ``lr: float = param("float", 1e-4, "Adam learning rate", low=0)``."""
    return dataclasses.field(metadata={"param": Param(kind, default, doc, source, **kw)})


def positive_int(default, doc, source="ours", **kw) -> Any:
    return param("int", default, doc, source, low=0, open_low=True, **kw)


def count(default, doc, source="ours", **kw) -> Any:
    return param("int", default, doc, source, low=0, **kw)


def positive(default, doc, source="ours", **kw) -> Any:
    return param("float", default, doc, source, low=0, open_low=True, **kw)


def unit(default, doc, source="ours", **kw) -> Any:
    return param("float", default, doc, source, low=0, high=1, **kw)


def flag(default, doc, source="ours") -> Any:
    return param("bool", default, doc, source)


def nested() -> Any:
    """A section inside a section (``experiment.augmentation``): a field of its own class,
    declared by that class's fields."""
    return dataclasses.field()


def same_as(section: type, name: str) -> Any:
    """The declaration of ``section.name``, shared (one key declared once, used twice)."""
    return dataclasses.field(metadata=_field(section, name).metadata)


def _field(section: Any, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(section)}[name]


_ANNOTATION = {"int": "int", "float": "float", "bool": "bool", "str": "str",
               "pair": "tuple[float, float]"}


def declarations(section: Any, below: Any = None) -> dict[str, Param]:
    """The declared keys of a section class, in field order (the order of the schema, the
    docs and ``dataclasses.asdict``); ``below``: only the keys a subclass adds to it.
    A field's annotation that disagrees with its declared kind is a TypeError here, at
    import."""
    inherited = {f.name for f in dataclasses.fields(below)} if below else set()
    out = {}
    for f in dataclasses.fields(section):
        p = f.metadata.get("param")
        if p is None or f.name in inherited:
            continue
        expected = "bool | str" if p.kind == "bool" and p.choices else _ANNOTATION[p.kind]
        if p.nullable:
            expected += " | None"
        if f.type != expected:
            raise TypeError(f"{section.__name__}.{f.name} is annotated {f.type!r} but "
                            f"declared {p.kind!r}: annotate it {expected!r}")
        out[f.name] = p
    return out


class Section:
    """A resolved section as a frozen dataclass (mix-in of every section class)."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str) -> Any:
        """The instance of a resolved section; a missing or unknown key names ``where``."""
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        missing = [k for k in names if k not in values]
        unknown = [k for k in values if k not in names]
        if missing or unknown:
            raise ConfigError(f"{where}: missing {', '.join(missing) or 'nothing'}, unknown "
                              f"{', '.join(unknown) or 'nothing'} (allowed: {', '.join(names)})")
        return cls(**{k: values[k] for k in names})


def by_key(base: type, table: Mapping[str, type[Section]], key: str, section, where: str):
    """``section`` as the ``base`` subclass that ``table`` names for its ``key`` (the suite,
    the dataset kind); a section already typed is returned as it is."""
    if isinstance(section, base):
        return section
    value = section.get(key)
    if value not in table:
        raise ConfigError(f"{where}.{key} must be one of {', '.join(table)}, got {value!r}")
    return table[value].from_mapping(section, where)


# --------------------------------------------------------------------------- checking
def merge(base: Any, overlay: Any) -> Any:
    """The one merge rule of the project — config overlays (as Snakemake merges
    ``--configfile``), ``--set`` over ``--hparams``/``--run``, a section over its declared
    defaults: mappings merge key by key at every depth; anything else (a list, a number,
    null) replaces. Inputs are never modified. Which keys are allowed is checked by the
    declarations afterwards, not here."""
    if not (isinstance(base, Mapping) and isinstance(overlay, Mapping)):
        return copy.deepcopy(overlay)
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
    return out


def check_sections(overrides: Any, sections: tuple[str, ...], where: str = "") -> dict:
    """``--hparams``-shaped overrides: a mapping of known sections, each a mapping (or null);
    run settings are named as such (they travel in ``--run``). ``where`` (e.g. "--set")
    starts each message."""
    at = f"{where}: " if where else ""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{at}hyperparameters must be a mapping with sections "
                          f"{', '.join(sections)}, got {overrides!r}")
    for section, values in overrides.items():
        if section == "run":
            raise ConfigError(f"{at}'run' holds run settings, not hyperparameters: pass them "
                              "with --run JSON (or --set run.KEY=VALUE)")
        if section not in sections:
            raise ConfigError(f"{at}unknown section {section!r}; allowed: {', '.join(sections)}")
        if values is not None and not isinstance(values, dict):
            raise ConfigError(f"{at}section {section!r} must be a mapping, got {values!r}")
    return overrides


def check_section(where: str, values: Any, params: dict[str, Param]) -> dict:
    """The checked values of one flat section (every key declared, every value allowed)."""
    if not isinstance(values, dict):
        raise ConfigError(f"section {where!r} must be a mapping, got {values!r}")
    out = {}
    for key, value in values.items():
        if key not in params:
            raise ConfigError(f"unknown key {where}.{key}; allowed: {', '.join(params)}")
        out[key] = params[key].check(f"{where}.{key}", value)
    return out


def run_settings(run: Any, sets: Any, declared: dict[str, Param]) -> dict:
    """A trainer's run settings before its machine fills the nulls: the declared defaults,
    ``run`` (``--run``), then ``sets`` (``--set run.*``), each value checked."""
    for source in (run, sets):
        if source is not None and not isinstance(source, dict):
            raise ConfigError(f"run settings must be a mapping, got {source!r}")
    given = check_section("run", merge(run or {}, sets or {}), declared)
    return {**{k: p.default for k, p in declared.items()}, **given}
