"""Reference data: the paper's order, names and colours, its reported numbers, and the
fixed scores used to normalise returns across games (Atari: random and human; StarPilot:
Procgen's R_min/R_max; MinAtar: a measured random policy and Young & Tian's AC(lambda)), each
with its source; no normalisation depends on which runs are in the grid."""

from __future__ import annotations

import pandas as pd

from scopeloss import registry

# Figure 2's panel order; envs not listed here (e.g. a Gymnasium id in tests) come after,
# alphabetically.
ENV_ORDER = ("Pong", "Breakout", "Asterix", "Seaquest", "Venture", "Gravitar",
             "MontezumaRevenge", "StarPilot",
             # MinAtar (the CPU-scale stand-in): the paper's games first, in its order
             "MinAtarBreakout", "MinAtarAsterix", "MinAtarSeaquest", "MinAtarSpaceInvaders",
             "MinAtarFreeway")

# How each loss is shown (order, label, colour, dash) comes from the loss registry
# (scopeloss.registry: the built-ins' registrations in scopeloss.losses); the analysis CLIs
# add a user's losses with ``use_loss_styles`` (the workflow passes the registry's styles
# as --loss-styles: the analysis env has no torch to import a user's module with).
_STYLES = {"ppo": registry.styles("ppo"), "supervised": registry.styles("supervised")}


def use_loss_styles(styles: dict | None) -> None:
    """Add (or replace) loss styles: ``{"ppo"|"supervised": {name: {label, color, dash}}}``,
    as ``scopeloss.registry.styles`` gives them (dashes may come back from JSON as lists)."""
    for kind, table in (styles or {}).items():
        for name, style in table.items():
            dash = style.get("dash")
            if isinstance(dash, list):  # [offset, [on, off, ...]] from JSON
                dash = (dash[0], tuple(dash[1]))
            _STYLES[kind][name] = {**style, "dash": dash}


def add_loss_styles_argument(parser) -> None:
    """``--loss-styles JSON``: the registry's styles of a user's losses (the workflow's)."""
    import json

    parser.add_argument("--loss-styles", type=json.loads, default=None, metavar="JSON",
                        help="loss labels, colours and dashes: {ppo|supervised: {name: "
                             "{label, color, dash}}} (scopeloss.registry.styles)")


def _json_object(text: str) -> dict:
    import argparse
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def add_sweeps_argument(parser, what: str, *, required: bool = False) -> None:
    """``--sweeps JSON``: the grid's sweeps (``scopeloss.grid.sweeps_json``)."""
    parser.add_argument("--sweeps", type=_json_object, required=required,
                        default=None if required else {}, metavar="JSON",
                        help=f"the grid's sweeps as JSON (scopeloss.grid.sweeps_json): {what}")


def _sort_key(kind: str, loss: str) -> tuple[int, str]:
    order = list(_STYLES[kind])
    return (order.index(loss), "") if loss in order else (len(order), loss)


def loss_style(kind: str, loss: str) -> dict:
    return _STYLES[kind].get(loss, {"label": loss, "color": None, "dash": "solid"})


# Caltech-256 per-class precision reported by the paper: Table 1 (plain) and Table 2
# (augmented); statistic -> loss -> value.
PAPER_DATASET = "caltech256"
PAPER_PRECISION = {
    "plain": {
        "mean": {"pel": 0.2303, "scope": 0.2814, "focal": 0.2320, "ce": 0.2383},
        "std": {"pel": 0.2116, "scope": 0.2436, "focal": 0.2360, "ce": 0.2471},
    },
    "augmented": {
        "mean": {"pel": 0.5823, "scope": 0.5956, "focal": 0.5723, "ce": 0.5929},
        "std": {"pel": 0.2055, "scope": 0.2195, "focal": 0.2227, "ce": 0.2196},
    },
}

# Atari (random, human) scores, the DQN-era table used by rliable.
ATARI_RANDOM_HUMAN = {
    "Pong": (-20.7, 14.6),
    "Breakout": (1.7, 30.5),
    "Asterix": (210.0, 8503.3),
    "Seaquest": (68.4, 42054.7),
    "Venture": (0.0, 1187.5),
    "Gravitar": (173.0, 3351.4),
    "MontezumaRevenge": (0.0, 4753.3),
}
# Procgen min-max normalisation (Cobbe et al. 2020): game -> distribution_mode -> (min, max).
PROCGEN_MIN_MAX = {"StarPilot": {"hard": (1.5, 35.0), "easy": (2.5, 64.0)}}

# MinAtar (random, reference) returns. Random: a uniformly random policy in this project's
# MinAtar settings (sticky actions 0.1, difficulty ramping, full action set), mean of 2,000
# episodes (each of 8 envs' first 250; standard errors 0.008-0.05), measured by
# benchmarks/minatar_random.py (seed 0, 2026-12-03). Reference: the end points of
# AC(lambda = 0.8)'s curves in the learning-curve figure of the MinAtar README (Young &
# Tian, 2020), read off the figure (no table exists): a yardstick, not a ceiling. DQN ends
# higher there on Freeway and Seaquest, and that Seaquest predates minatar 1.0.11's oxygen
# fix (docs/choices.md).
MINATAR_RANDOM_AC_LAMBDA = {
    "MinAtarBreakout": (0.50, 17.5),
    "MinAtarAsterix": (0.49, 19.0),
    "MinAtarSeaquest": (0.10, 16.0),
    "MinAtarSpaceInvaders": (2.78, 185.0),
    "MinAtarFreeway": (0.12, 47.0),
}

ATARI_FRAMESKIP = 4


def env_sort_key(env: str) -> tuple[int, str]:
    return (ENV_ORDER.index(env), "") if env in ENV_ORDER else (len(ENV_ORDER), env)


def rl_loss_sort_key(loss: str) -> tuple[int, str]:
    """Registration order: the paper's four, then the remedies, then a user's losses."""
    return _sort_key("ppo", loss)


def cls_loss_sort_key(loss: str) -> tuple[int, str]:
    """Registration order: Tables 1-2's columns, then the baselines, then a user's losses."""
    return _sort_key("supervised", loss)


def rl_loss_name(loss: str) -> str:
    return loss_style("ppo", loss)["label"]


def cls_loss_name(loss: str) -> str:
    return loss_style("supervised", loss)["label"]


def normalisation_range(env: str, distribution_mode: str | None = None) -> tuple[float, float] | None:
    """(low, high) such that (score - low) / (high - low) is the normalised score; None if
    the env has no reference (e.g. a Gymnasium test env)."""
    if env in ATARI_RANDOM_HUMAN:
        return ATARI_RANDOM_HUMAN[env]
    if env in MINATAR_RANDOM_AC_LAMBDA:
        return MINATAR_RANDOM_AC_LAMBDA[env]
    if env in PROCGEN_MIN_MAX:
        modes = PROCGEN_MIN_MAX[env]
        return modes.get(distribution_mode or "hard")
    return None


def steps_words(n: float) -> str:
    """A step count with a k / M / G suffix."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:g}"


def span_words(values, fmt, unit: str) -> str:
    """A budget's values as words: one value, or the range."""
    values = sorted({float(v) for v in values if pd.notna(v)})
    if not values:
        return "unknown"
    if len(values) == 1:
        return f"{fmt(values[0])} {unit}"
    return f"{fmt(values[0])}–{fmt(values[-1])} {unit}"


# ---------------------------------------------------------------------------- experiments
EXPERIMENT_ORDER = ("plain", "augmented", "plain_balanced", "augmented_cuda")
PAPER_EXPERIMENTS = ("plain", "augmented")
# A beyond-the-paper experiment -> the paper experiment it extends (the figure's lift panels).
EXTENDS = {"plain_balanced": "plain", "augmented_cuda": "augmented"}


def experiment_sort_key(exp: str) -> tuple[int, str]:
    return ((EXPERIMENT_ORDER.index(exp), "") if exp in EXPERIMENT_ORDER
            else (len(EXPERIMENT_ORDER), exp))


def experiment_title(exp: str) -> str:
    return exp if exp in PAPER_EXPERIMENTS else f"{exp} (beyond the paper)"
