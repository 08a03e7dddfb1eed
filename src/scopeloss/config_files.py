"""Reading config files: YAML with the file, line and column of a syntax error and of a key
given twice, overlays merged in order (``load_config``), a schema error in words naming the
key (``describe_validation_error``), and a run setting written among the hyperparameters
named with its place. ``scopeloss.grid`` checks what they hold."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scopeloss import params
from scopeloss.config_keys import ConfigError, merge
from scopeloss.overrides import numbers_as_yaml12

RL_RUN_KEYS = tuple(params.RL_RUN)
CLASSIFICATION_RUN_KEYS = tuple(params.CL_RUN)


def read_yaml(path: str | Path) -> dict:
    """One config file as a mapping; a YAML syntax error or a key given twice in one mapping
    names the file, line and column; an empty file is an error. Numbers in scientific
    notation are numbers (``overrides.numbers_as_yaml12``), as in ``--set``."""
    import yaml

    try:
        with open(path) as fh:
            data = yaml.load(fh, Loader=_unique_key_loader())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty (a config file must be a mapping)")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return numbers_as_yaml12(data)


def _unique_key_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping (YAML keeps the last)."""

        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice in one mapping (first at line "
                        f"{seen[key] + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    return Loader


def load_config(path: str | Path, *overlays: str | Path) -> dict:
    """config.yaml with preset overlays merged over it, in order."""
    config: dict = {}
    for p in (path, *overlays):
        config = merge(config, read_yaml(p))
    return config


def describe_validation_error(error: BaseException) -> str:
    """One line naming the config key of a jsonschema ValidationError (possibly wrapped in
    another exception's args, as snakemake.utils.validate does) and what is allowed there."""
    found = _find_validation_error(error)
    if found is None:
        return str(error)
    key = ""
    for part in found.absolute_path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    key = key or "<top level>"
    schema = found.schema if isinstance(found.schema, Mapping) else {}
    if found.validator == "additionalProperties" and "properties" in schema:
        extra = sorted(set(found.instance) - set(schema["properties"]))
        allowed = ", ".join(schema["properties"])
        return (f"invalid config key {key}: unknown key(s) {', '.join(map(str, extra))}; "
                f"allowed: {allowed}")
    if found.validator in ("oneOf", "anyOf"):
        words = [_allowed_words(s) for s in schema.get(found.validator, [])]
        if words and all(words):
            return (f"invalid config key {key}: must be {' or '.join(words)}, got "
                    f"{found.instance!r}")
    return f"invalid config key {key}: {found.message}"


def _allowed_words(schema: Mapping) -> str:
    """What a (simple) JSON Schema allows, in words; '' when it is not simple."""
    kind = schema.get("type")
    if "enum" in schema:
        return f"one of {', '.join(map(str, schema['enum']))}"
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        return "a non-empty string"
    if kind in ("integer", "number"):
        noun = "an integer" if kind == "integer" else "a number"
        bounds = [f"{op} {schema[k]}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                   ("maximum", "<="), ("exclusiveMaximum", "<"))
                  if k in schema]
        return f"{noun}{' ' + ' and '.join(bounds) if bounds else ''}"
    if "oneOf" in schema:
        words = [_allowed_words(s) for s in schema["oneOf"]]
        return " or ".join(words) if all(words) else ""
    return ""


def _find_validation_error(error: BaseException | None, depth: int = 0):
    if depth > 5 or error is None:
        return None
    if hasattr(error, "absolute_path") and hasattr(error, "validator"):
        return error
    for arg in getattr(error, "args", ()):
        if isinstance(arg, BaseException):
            found = _find_validation_error(arg, depth + 1)
            if found is not None:
                return found
    return _find_validation_error(error.__cause__ or error.__context__, depth + 1)


def check_run_settings_placement(config: Mapping) -> None:
    """A run setting written among the hyperparameters (the pre-round-2 layout) is named
    with the place it moved to, before the schema's generic 'additional property' error."""
    def specs(section: Any, key: str) -> Mapping:
        value = section.get(key) if isinstance(section, Mapping) else None
        return value if isinstance(value, Mapping) else {}  # wrong shapes: the schema names them

    rl, cl = specs(config, "rl"), specs(config, "classification")
    places = [("rl.ppo", rl.get("ppo"), "rl.run", RL_RUN_KEYS)]
    places += [(f"rl.env_specs.{k}", v, "rl.run", RL_RUN_KEYS)
               for k, v in specs(rl, "env_specs").items()]
    places += [(f"classification.experiment_specs.{k}", v, "classification.run",
                CLASSIFICATION_RUN_KEYS) for k, v in specs(cl, "experiment_specs").items()]
    places += [(f"classification.dataset_specs.{k}", v, "classification.run",
                CLASSIFICATION_RUN_KEYS) for k, v in specs(cl, "dataset_specs").items()]
    for where, section, target, keys in places:
        for key in section if isinstance(section, Mapping) else ():
            if key in keys:
                raise ConfigError(
                    f"config key {where}.{key}: a run setting (how a job runs, not what it "
                    f"learns); set it as {target}.{key} instead"
                )
