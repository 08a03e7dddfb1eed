"""The loss registry: every loss a trainer can run, built-in or from a user's module, once.

A loss is registered with its name, kind (``ppo``: a PPO policy loss; ``supervised``: a
classification loss), function, parameters and their defaults, whether it needs the batch's
action (or class) counts, how the PPO update draws its samples, and how figures draw it
(label, colour, dash). The public decorators are ``scopeloss.losses.register_ppo_loss`` and
``register_supervised_loss``; the built-ins register through them too. Everything that names
losses derives from here: the dispatch (``scopeloss.losses``), the config checks, the
Snakemake wildcard constraints, the tables' and figures' order, labels and colours.

A user's module is named in the config's ``loss_modules`` (a file path relative to the
working directory, or an importable module name) and loaded with ``load_modules``: by the
Snakefile, ``python -m scopeloss.grid check`` and both trainer CLIs (``--loss-module``).
Its source enters the code fingerprint of the cells that run its losses
(``code_fingerprint``).

This module imports no torch (the Snakefile and the analysis env read it); a user's module
imports what it needs itself.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

from scopeloss.config_keys import ConfigError, Param

KINDS = ("ppo", "supervised")
KIND_WORDS = {"ppo": "PPO policy loss", "supervised": "supervised loss"}
# What a loss function of each kind is called with: positional arguments, then keywords
# (besides the loss's own parameters and, for a loss that needs them, the counts).
CALL = {"ppo": (("logits", "actions", "old_logprob", "advantages"), ("clip_coef",)),
        "supervised": (("logits", "targets"), ())}
COUNTS_ARG = {"ppo": "action_counts", "supervised": "class_counts"}
# The context a loss may declare it needs (``needs=``), handed to it by keyword, per kind:
# the counts, the fraction of the run's budget done, the 0-based epoch / 1-based update,
# and ``state``, a dict of tensors the loss owns (saved in checkpoints, restored on resume).
NEEDS = {"ppo": ("action_counts", "progress", "update", "state"),
         "supervised": ("class_counts", "progress", "epoch", "state")}
# How the PPO update draws each epoch's samples from the rollout: a permutation (natural) or,
# with replacement, every action equally likely (action_balanced: resampled_policy).
SAMPLINGS = ("natural", "action_balanced")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")  # also a directory name and a wildcard
# The key of a loss spec that makes it a named variant of another loss (``variant``).
VARIANT_KEY = "loss"
# Colours and dashes for losses that do not choose theirs (tab10's unused colours first).
_PALETTE = ("#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a",
            "#ff9896", "#c5b0d5", "#c49c94")
_DASHES = ("solid", (0, (4, 1.5)), (0, (1, 1)), (0, (3, 1, 1, 1, 1, 1)))


@dataclass(frozen=True)
class Loss:
    """One registered loss. ``module`` is the source file of a user's module (None: built-in)."""

    name: str
    kind: str
    function: Callable = field(repr=False)
    bounds: dict[str, Param]  # each parameter's declaration: default and allowed values
    label: str
    color: str | None
    dash: Any
    needs: tuple[str, ...]
    sampling: str
    module: str | None
    takes_log_probs: bool
    # supervised only: ``fn(logits, *, <needs>, **params) -> logits`` before every prediction
    eval_logits: Callable | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return self.module or "scopeloss.losses (built-in)"

    @property
    def params(self) -> dict[str, float]:
        """Each parameter's default (read off its declaration)."""
        return {k: float(rule.default) for k, rule in self.bounds.items()}

    @property
    def needs_counts(self) -> bool:
        """Whether it re-weights by the counts (``grid.double_correction`` reads this)."""
        return COUNTS_ARG[self.kind] in self.needs


_LOSSES: dict[str, dict[str, Loss]] = {kind: {} for kind in KINDS}
_LOADED: dict[str, str] = {}  # loss_modules entry -> source file, once each
_loading: list[str] = []  # the user module being imported (its registrations record it)


def param(default: float, *, low: float | None = None, high: float | None = None,
          open_low: bool = False, open_high: bool = False) -> Param:
    """A loss parameter with bounds, for ``register_*_loss``: ``alpha=param(0.01, low=0)``
    refuses ``loss.alpha=-5`` naming the key (``open_low``/``open_high``: exclusive)."""
    return Param("float", default, "a loss parameter", low=low, high=high, open_low=open_low,
                 open_high=open_high)


def register(kind: str, name: str, params: dict[str, float | Param], *, label: str | None = None,
             color: str | None = None, dash: Any = None, needs: Any = (),
             needs_counts: bool = False, sampling: str = "natural",
             eval_logits: Callable | None = None) -> Callable[[Callable], Callable]:
    """The decorator behind ``register_ppo_loss`` / ``register_supervised_loss``: every bad
    registration is a ConfigError of one line naming the loss and what is wrong."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    module = _loading[-1] if _loading else None
    where = f" (in {module})" if module else ""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"loss name {name!r}{where} must be a letter then letters, digits, "
                          "underscores, dots or minus signs")
    bounds = {}
    for key, value in params.items():
        default = value.default if isinstance(value, Param) else value
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise ConfigError(f"loss {name!r}{where}: parameter {key}'s default must be a "
                              f"number, got {default!r}")
        # a bare number is a parameter without bounds; its rule still checks it is finite
        bounds[key] = value if isinstance(value, Param) else param(value)
        bounds[key].check(f"loss {name!r}{where}: parameter {key}'s default", default)
    if sampling not in SAMPLINGS or (sampling != "natural" and kind != "ppo"):
        raise ConfigError(f"loss {name!r}{where}: sampling must be natural (or, for a PPO "
                          f"loss, action_balanced), got {sampling!r}")
    wanted = _check_needs(kind, name, needs, where, needs_counts)
    if eval_logits is not None and (kind != "supervised" or not callable(eval_logits)):
        raise ConfigError(f"loss {name!r}{where}: eval_logits must be a function, and only a "
                          f"supervised loss has one, got {eval_logits!r} for a "
                          f"{KIND_WORDS[kind]}")

    def decorate(function: Callable) -> Callable:
        if name in _LOSSES[kind]:
            raise ConfigError(
                f"{KIND_WORDS[kind]} {name!r} registered twice: by "
                f"{_LOSSES[kind][name].origin} and by {module or 'scopeloss.losses'}; "
                "one name names one loss (choose another name)")
        positional, keywords = CALL[kind]
        takes_log_probs = _check_signature(name, function, positional,
                                           (*keywords, *bounds, *wanted), where,
                                           f"a {KIND_WORDS[kind]} is")
        if eval_logits is not None:
            _check_signature(name, eval_logits, ("logits",), (*wanted, *bounds), where,
                             "its eval_logits is")
        _LOSSES[kind][name] = Loss(name, kind, function, bounds, label or name, color, dash,
                                   wanted, sampling, module, takes_log_probs, eval_logits)
        return function

    return decorate


def _check_needs(kind, name, needs, where, needs_counts) -> tuple[str, ...]:
    """``needs`` as a tuple of NEEDS[kind] names, with the old ``needs_*_counts`` alias."""
    if isinstance(needs, str) or not isinstance(needs, (tuple, list)):
        raise ConfigError(f"loss {name!r}{where}: needs must be a tuple of names, got {needs!r}")
    wanted = tuple(needs) + ((COUNTS_ARG[kind],) if needs_counts else ())
    for need in wanted:
        if need not in NEEDS[kind]:
            raise ConfigError(f"loss {name!r}{where}: needs {need!r} is not something a "
                              f"{KIND_WORDS[kind]} is handed; allowed: {', '.join(NEEDS[kind])}")
    return tuple(dict.fromkeys(wanted))  # once each, in the order given


def _check_signature(name, function, positional, keywords, where, called) -> bool:
    """That ``function`` takes ``positional`` then ``keywords`` (``called``: how it is
    called); whether it also takes the precomputed ``log_probs`` (the built-ins do:
    computed once per minibatch)."""
    if not callable(function):
        raise ConfigError(f"loss {name!r}{where}: registered object is not a function")
    signature = inspect.signature(function)
    try:
        signature.bind(*positional, **dict.fromkeys(keywords))
    except TypeError as err:
        call = f"({', '.join(positional)}{', *, ' if keywords else ''}{', '.join(keywords)})"
        raise ConfigError(f"loss {name!r}{where}: {function.__name__}{signature} cannot be "
                          f"called as {called}, with {call}: {err}") from None
    return "log_probs" in signature.parameters


# ----------------------------------------------------------------------------- lookups
def losses(kind: str) -> dict[str, Loss]:
    """The registered losses of ``kind``, in registration order (built-ins first)."""
    _builtins()
    return dict(_LOSSES[kind])


def names(kind: str) -> tuple[str, ...]:
    return tuple(losses(kind))


def get(kind: str, name: str, key: str = "loss") -> Loss:
    """The loss ``name``, else a ConfigError naming ``key`` and the registered ones."""
    _builtins()
    found = _LOSSES[kind].get(name)  # no copy: the trainers look a loss up per minibatch
    if found is None:
        raise ConfigError(f"{key}: unknown {KIND_WORDS[kind]} {name!r}; registered: "
                          f"{', '.join(names(kind))} (a loss of your own: name its module in "
                          "loss_modules)")
    return found


def check_params(kind: str, name: str, given: dict | None, key: str = "loss") -> dict[str, float]:
    """The parameters of the loss ``name`` (``params_of``), naming ``key`` in any error."""
    return params_of(get(kind, name, key), given, key)


def params_of(loss: Loss, given: dict | None, key: str = "loss") -> dict[str, float]:
    """The loss's parameters: its defaults, overridden by ``given`` (null keeps the default);
    a key the loss does not take, or a value that is not a finite number within the
    parameter's declared bounds, names ``key``."""
    out = dict(loss.params)
    for name, value in (given or {}).items():
        if name not in loss.params:
            allowed = ", ".join(loss.params) or "none"
            raise ConfigError(f"{key}.{name}: loss {loss.name!r} takes no parameter {name!r} "
                              f"(its parameters: {allowed})")
        if value is not None:
            out[name] = loss.bounds[name].check(f"{key}.{name}", value)
    return out


# ----------------------------------------------------------------------------- variants
def variant(kind: str, name: str, spec: Mapping | None, key: str = "loss") -> tuple[str, dict]:
    """The base loss and the parameters of the cell loss ``name`` whose spec is ``spec``
    (``loss_specs.<name>``, or a cell's resolved ``loss`` section): a registered loss with
    its parameters, or a named *variant* ``{loss: BASE, param: value, ...}`` of the
    registered loss BASE (its parameters over BASE's defaults; null keeps a default). A
    variant's name may not be a registered loss's (it would shadow it)."""
    spec = dict(spec or {})
    base = spec.pop(VARIANT_KEY, None)
    if base is None or base == name:
        return name, check_params(kind, name, spec, key)
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{key}: variant name {name!r} must be a letter then letters, digits, "
                          "underscores, dots or minus signs")
    if not isinstance(base, str):
        raise ConfigError(f"{key}.{VARIANT_KEY}: must be the name of a registered loss, got "
                          f"{base!r}")
    if name in names(kind):
        raise ConfigError(f"{key}: the variant name {name!r} shadows the registered "
                          f"{KIND_WORDS[kind]} {name!r} (a variant of {base!r} needs a name of "
                          "its own)")
    return base, params_of(get(kind, base, f"{key}.{VARIANT_KEY}"), spec, key)


def cell_loss(kind: str, name: str, section: dict | None) -> tuple[str, dict]:
    """A trainer's ``--loss`` and resolved ``loss`` section -> (the registered loss it runs,
    its parameters): an unknown name is named as ``--loss``, a variant checked by
    ``variant``."""
    if not (isinstance(section, dict) and section.get(VARIANT_KEY) not in (None, name)):
        get(kind, name, "--loss")
    return variant(kind, name, section, "loss")


def resolved_loss(base: str, name: str, params: dict) -> dict:
    """The ``loss`` section of a resolved cell: the parameters, with the base of a variant."""
    return dict(params) if base == name else {VARIANT_KEY: base, **params}


def styles(kind: str, variants: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """How figures and tables show each loss of ``kind``, and each of ``variants`` (name ->
    label): label, colour, dash, in order. Losses without their own colour or dash, and
    every variant, get the next free one."""
    out, spare = {}, 0
    entries = [(n, l.label, l.color, l.dash) for n, l in losses(kind).items()]
    entries += [(n, label, None, None) for n, label in (variants or {}).items()]
    for name, label, color, dash in entries:
        if color is None or dash is None:
            color = color or _PALETTE[spare % len(_PALETTE)]
            dash = dash if dash is not None else _DASHES[spare % len(_DASHES)]
            spare += 1
        out[name] = {"label": label, "color": color, "dash": dash}
    return out


# ----------------------------------------------------------------------------- user modules
def load_modules(entries, key: str = "loss_modules") -> list[str]:
    """Import each of ``entries`` (a ``.py`` path relative to the working directory, or an
    importable module name) once; returns their source files. A missing module, or one that
    fails to import, is a ConfigError naming it with its own error (file and line)."""
    _builtins()
    if entries is None:
        return []
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise ConfigError(f"{key} must be a list of module paths or names, got {entries!r}")
    files = []
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise ConfigError(f"{key}: each entry must be a non-empty string, got {entry!r}")
        if entry not in _LOADED:
            _LOADED[entry] = _load(entry, key)
        files.append(_LOADED[entry])
    return files


ALLOWED_MODULES = ("a .py file (a path relative to the working directory) or an importable "
                   "module name such as my_pkg.losses")
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _load(entry: str, key: str) -> str:
    is_path = entry.endswith(".py") or "/" in entry or "\\" in entry or Path(entry).is_file()
    if is_path:
        path = Path(entry)
        if not path.is_file():
            raise ConfigError(f"{key}: {entry}: no such file (a path is relative to the working "
                              f"directory, {Path.cwd()})")
        if path.suffix != ".py":
            raise ConfigError(f"{key}: {entry}: not a .py file; a loss module is "
                              f"{ALLOWED_MODULES}")
        source = str(path.resolve())
        if source in _LOADED.values():
            return source
        spec = importlib.util.spec_from_file_location(
            f"scopeloss_user_losses.{path.stem}_{hashlib.sha256(source.encode()).hexdigest()[:8]}",
            path)
        assert spec is not None and spec.loader is not None  # a .py path always has both
        loader = spec.loader
        module = importlib.util.module_from_spec(spec)
        run: Callable[[], object] = lambda: loader.exec_module(module)  # noqa: E731
    else:
        if not _MODULE_NAME.fullmatch(entry):
            raise ConfigError(f"{key}: {entry}: not a module name; a loss module is "
                              f"{ALLOWED_MODULES}")
        try:
            spec = importlib.util.find_spec(entry)
        except (ImportError, ValueError) as err:
            raise ConfigError(f"{key}: {entry}: cannot be imported: {err}") from None
        if spec is None or spec.origin is None:
            raise ConfigError(f"{key}: {entry}: no such module (not a .py path, and not "
                              "importable from the working directory or the environment)")
        if not spec.origin.endswith(".py"):
            raise ConfigError(f"{key}: {entry}: {spec.origin} is not Python source; a loss "
                              f"module is {ALLOWED_MODULES}")
        source = str(Path(spec.origin).resolve())
        run = lambda: importlib.import_module(entry)  # noqa: E731
    _loading.append(source)
    try:
        run()
    except ConfigError as err:  # a registration refused: our own message names the loss
        raise ConfigError(f"{key}: {entry}: {err}") from None
    except Exception as err:  # the module's own error, located in its own source
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if Path(f.filename).resolve() == Path(source)]
        line = getattr(err, "lineno", None) if isinstance(err, SyntaxError) else None
        line = line or (frames[-1].lineno if frames else None)
        at = f" (line {line})" if line else ""
        raise ConfigError(f"{key}: {entry}: failed to import{at}: "
                          f"{type(err).__name__}: {err}") from None
    finally:
        _loading.pop()
    return source


@contextmanager
def restored():
    """The registry as it was on entry, afterwards (tests that load modules of their own)."""
    _builtins()
    saved = {kind: dict(table) for kind, table in _LOSSES.items()}
    loaded = dict(_LOADED)
    try:
        yield
    finally:
        for kind in KINDS:
            _LOSSES[kind].clear()
            _LOSSES[kind].update(saved[kind])
        _LOADED.clear()
        _LOADED.update(loaded)


# The built-in losses are a module that registers, loaded by name like a user's module (the
# registry knows no loss; scopeloss.losses imports the registry, never the other way).
BUILTIN_MODULE = "scopeloss.losses"


def _builtins() -> None:
    """The built-in losses register when their module is first imported (torch-free)."""
    importlib.import_module(BUILTIN_MODULE)


__all__ = ["Loss", "KINDS", "register", "losses", "names", "get", "check_params", "variant",
           "styles",
           "load_modules", "restored"]
