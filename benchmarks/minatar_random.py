"""Returns of a uniformly random policy on the five MinAtar games, in this project's MinAtar
settings (the package's defaults: full 6-action set, sticky actions 0.1, difficulty
ramping): the low end of MinAtar's fixed-reference normalisation
(``scopeloss.analysis.reference.MINATAR_RANDOM_AC_LAMBDA``).

    python benchmarks/minatar_random.py [--episodes 2000] [--seed 0]

Each of the 8 envs contributes its own first episodes (episodes / 8 each), so the sample is
of whole episodes drawn alike: keeping the first N episodes to end across the envs would
favour short ones (an env in a long episode contributes nothing until it ends).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from scopeloss.rl.config import resolve
from scopeloss.rl.envs import make_env

GAMES = ("MinAtarBreakout", "MinAtarAsterix", "MinAtarSeaquest", "MinAtarSpaceInvaders",
         "MinAtarFreeway")


def random_returns(name: str, episodes: int, seed: int, num_envs: int = 8) -> np.ndarray:
    """The returns of each env's first ceil(episodes / num_envs) episodes."""
    env = make_env(resolve(name, "policy").env, num_envs, seed)
    rng = np.random.default_rng(seed)
    per_env = -(-episodes // num_envs)
    ret, returns = np.zeros(num_envs), [[] for _ in range(num_envs)]
    env.reset()
    while min(len(r) for r in returns) < per_env:
        _, raw, term, trunc, _ = env.step(rng.integers(0, env.num_actions, num_envs))
        ret += raw
        for i in np.flatnonzero(term | trunc):
            if len(returns[i]) < per_env:
                returns[i].append(ret[i])
            ret[i] = 0.0
    env.close()
    return np.concatenate([np.asarray(r) for r in returns])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = {}
    for name in GAMES:
        r = random_returns(name, args.episodes, args.seed)
        out[name] = {"mean": round(float(r.mean()), 3),
                     "sem": round(float(r.std(ddof=1) / np.sqrt(len(r))), 3),
                     "episodes": len(r)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
