"""Reference data: the paper's order, names and colours, its reported numbers, and the
fixed scores used to normalise returns across games (Atari: random and human; StarPilot:
Procgen's R_min/R_max; MinAtar: a measured random policy and Young & Tian's AC(lambda)), each
with its source; no normalisation depends on which runs are in the grid."""

from __future__ import annotations

# Figure 2's panel order; envs not listed here (e.g. a Gymnasium id in tests) come after,
# alphabetically.
ENV_ORDER = ("Pong", "Breakout", "Asterix", "Seaquest", "Venture", "Gravitar",
             "MontezumaRevenge", "StarPilot",
             # MinAtar (the CPU-scale stand-in): the paper's games first, in its order
             "MinAtarBreakout", "MinAtarAsterix", "MinAtarSeaquest", "MinAtarSpaceInvaders",
             "MinAtarFreeway")

RL_LOSS_ORDER = ("policy", "policy_entropy", "scope", "focal")
RL_LOSS_NAMES = {"policy": "Policy", "policy_entropy": "Policy+Entropy", "scope": "Scope",
                 "focal": "Focal"}
# Fixed per loss so that every figure uses the same colour for the same loss
# (tab10 blue/orange/green/red; Scope in green throughout).
RL_LOSS_COLORS = {"policy": "#1f77b4", "policy_entropy": "#ff7f0e", "scope": "#2ca02c",
                  "focal": "#d62728"}
# Distinct dash patterns too, so that curves that coincide (same seed, losses that barely
# differ at small budgets) stay visible instead of hiding one another.
RL_LOSS_DASHES = {"policy": "solid", "policy_entropy": (0, (5, 2)), "scope": (0, (2, 1.5)),
                  "focal": (0, (6, 1.5, 1, 1.5))}

# Tables 1-2 column order: the paper's four, then the extra imbalance baselines.
CLS_LOSS_ORDER = ("pel", "scope", "focal", "ce", "weighted_ce", "balanced_softmax")
CLS_LOSS_NAMES = {"pel": "PEL", "scope": "SL", "focal": "FL", "ce": "CEL",
                  "weighted_ce": "Weighted CE", "balanced_softmax": "Balanced Softmax"}
CLS_LOSS_COLORS = {"pel": "#ff7f0e", "scope": "#2ca02c", "focal": "#d62728", "ce": "#1f77b4",
                   "weighted_ce": "#9467bd", "balanced_softmax": "#8c564b"}

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
# MinAtar settings (sticky actions 0.1, difficulty ramping, full action set), mean of 200
# episodes, measured by benchmarks/minatar_random.py (seed 0, 2026-11-29). Reference:
# Young & Tian 2019's AC(lambda) after 5M frames, as quoted in this project's issue 21
# (Breakout 17.5, Asterix 19, Freeway 47, SpaceInvaders 185, Seaquest 16; same env
# settings); not re-checked against the paper's figures in this repository.
MINATAR_RANDOM_AC_LAMBDA = {
    "MinAtarBreakout": (0.41, 17.5),
    "MinAtarAsterix": (0.46, 19.0),
    "MinAtarSeaquest": (0.08, 16.0),
    "MinAtarSpaceInvaders": (2.73, 185.0),
    "MinAtarFreeway": (0.135, 47.0),
}

ATARI_FRAMESKIP = 4


def env_sort_key(env: str) -> tuple[int, str]:
    return (ENV_ORDER.index(env), "") if env in ENV_ORDER else (len(ENV_ORDER), env)


def rl_loss_sort_key(loss: str) -> tuple[int, str]:
    return (RL_LOSS_ORDER.index(loss), "") if loss in RL_LOSS_ORDER else (len(RL_LOSS_ORDER), loss)


def cls_loss_sort_key(loss: str) -> tuple[int, str]:
    return (CLS_LOSS_ORDER.index(loss), "") if loss in CLS_LOSS_ORDER else (len(CLS_LOSS_ORDER), loss)


def rl_loss_name(loss: str) -> str:
    return RL_LOSS_NAMES.get(loss, loss)


def cls_loss_name(loss: str) -> str:
    return CLS_LOSS_NAMES.get(loss, loss)


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
