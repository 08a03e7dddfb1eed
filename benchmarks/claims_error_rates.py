"""Error rates and power of the claims table's verdicts on simulated grids (docs/statistics.md):
``python benchmarks/claims_error_rates.py [--grids 200]``.

Each design is envs x 4 losses x n seeds, every loss's final returns normal with sd 1 per
env; Scope shifted by 0 (null), 1 or 2 sd on every env. Claim A is decided by the shipped
procedure (``claims.return_claims`` + ``decide``: exact permutation tests, Holm, the verdicts).
Reported per design and effect: the share of per-env rows and of aggregate rows called
supported (under the null: supported or contradicted), the share of grids with any decided
row, and the share of per-env rows labelled underpowered. Uses the grid maker of
tests/test_analysis_significance.py.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_analysis_significance import _grid  # noqa: E402

from scopeloss.analysis import claims  # noqa: E402

DECIDED = (claims.SUPPORTED, claims.CONTRADICTED)
DESIGNS = ((3, 3, "the demo"), (3, 5, ""), (5, 5, "presets/minatar.yaml"),
           (8, 3, "the paper grid"))


def rates(envs: int, seeds: int, effect: float, grids: int, reps: int, rng) -> dict:
    names = tuple(f"E{i + 1}" for i in range(envs))
    single = aggregate = single_n = aggregate_n = any_decided = underpowered = 0
    for _ in range(grids):
        rows = claims.decide(claims.return_claims(_grid(rng, seeds, effect, names), reps=reps,
                                                  seed=0))
        wanted = DECIDED if effect == 0 else (claims.SUPPORTED,)
        for row in rows:
            hit = row["verdict"] in wanted
            if claims.is_aggregate(row):
                aggregate, aggregate_n = aggregate + hit, aggregate_n + 1
            else:
                single, single_n = single + hit, single_n + 1
                underpowered += row["verdict"] == claims.UNDERPOWERED
        any_decided += any(r["verdict"] in DECIDED for r in rows)
    return {"single": single / single_n, "aggregate": aggregate / aggregate_n,
            "any": any_decided / grids, "underpowered": underpowered / single_n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", type=int, default=200)
    # the Monte Carlo p cannot go below 2/(reps + 1): it must reach 0.05/m (Holm, m rows)
    parser.add_argument("--reps", type=int, default=2000, help="Monte Carlo relabellings")
    args = parser.parse_args()
    print(f"{args.grids} simulated grids per design and effect; 4 losses (3 comparisons of "
          "Scope); claim A.\n")
    print("| design (envs × seeds) | effect | per-env rows decided | aggregate rows decided "
          "| grids with any decided | per-env rows underpowered |")
    print("|---|---:|---:|---:|---:|---:|")
    for envs, seeds, what in DESIGNS:
        for effect in (0.0, 1.0, 2.0):
            r = rates(envs, seeds, effect, args.grids, args.reps,
                      np.random.default_rng(1000 * envs + 10 * seeds + int(effect)))
            label = f"{envs} × {seeds}" + (f" ({what})" if what else "")
            print(f"| {label} | {'null' if effect == 0 else f'{effect:g} sd'} | "
                  f"{r['single']:.1%} | {r['aggregate']:.1%} | {r['any']:.1%} | "
                  f"{r['underpowered']:.0%} |", flush=True)


if __name__ == "__main__":
    main()
