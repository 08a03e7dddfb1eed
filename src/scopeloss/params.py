"""Placeholder, filled below."""
from __future__ import annotations

SEED_MAX = 2**32 - 1  # numpy's seed range


class ConfigError(ValueError):
    """A config value, CLI value or input file the pipeline cannot run; the message names
    the key (or file) and what is allowed."""


def check_seed(seed, key: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"{key} must be an integer in 0..{SEED_MAX}, got {seed!r}")
    return seed
