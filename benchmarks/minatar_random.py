"""Returns of a uniformly random policy on the five MinAtar games, in this project's MinAtar
settings (the package's defaults: full 6-action set, sticky actions 0.1, difficulty
ramping): the low end of MinAtar's fixed-reference normalisation
(``scopeloss.analysis.reference.MINATAR_RANDOM_AC_LAMBDA``).

    python benchmarks/minatar_random.py [--episodes 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from scopeloss.rl.bookkeeping import EpisodeTracker
from scopeloss.rl.config import resolve
from scopeloss.rl.envs import make_env

GAMES = ("MinAtarBreakout", "MinAtarAsterix", "MinAtarSeaquest", "MinAtarSpaceInvaders",
         "MinAtarFreeway")


def random_returns(name: str, episodes: int, seed: int, num_envs: int = 8) -> np.ndarray:
    env = make_env(resolve(name, "policy")["env"], num_envs, seed)
    rng = np.random.default_rng(seed)
    tracker, done_rows = EpisodeTracker(num_envs), []
    env.reset()
    while sum(len(r) for r in done_rows) < episodes:
        _, raw, term, trunc, _ = env.step(rng.integers(0, env.num_actions, num_envs))
        rows = tracker.update(raw, term | trunc, 0)
        if rows is not None:
            done_rows.append(rows)
    env.close()
    return np.concatenate(done_rows)[:episodes, 1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=200)
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
