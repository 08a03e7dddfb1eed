"""Error rates of the claims table's verdicts on simulated grids (README "How a verdict is
decided"): ``python benchmarks/claims_error_rates.py [--grids 200]``.

Null grids: 3 envs x 4 losses x n seeds, every loss's final returns from one distribution;
the share of claim-A comparisons called supported or contradicted, and of grids with any.
Effect grids: Scope 3 sd better on every env, 5 seeds; the share of grids whose 6 aggregate
comparisons are all supported. Uses the same grid maker as tests/test_analysis_significance.py.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_analysis_significance import _grid  # noqa: E402

from scopeloss.analysis import claims  # noqa: E402

DECIDED = (claims.SUPPORTED, claims.CONTRADICTED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", type=int, default=200)
    # the Monte Carlo p cannot go below 2/(reps + 1): it must reach 0.05/15 (Holm, 15 rows)
    parser.add_argument("--reps", type=int, default=2000, help="Monte Carlo relabellings")
    args = parser.parse_args()
    print("| seeds | comparisons decided on null grids | null grids with any decided |")
    print("|---:|---:|---:|")
    for n in (2, 3, 5):
        rng = np.random.default_rng(100 + n)
        decided = total = grids = 0
        for _ in range(args.grids):
            rows = claims.decide(claims.return_claims(_grid(rng, n), reps=args.reps, seed=0))
            k = sum(r["verdict"] in DECIDED for r in rows)
            decided, total, grids = decided + k, total + len(rows), grids + (k > 0)
        print(f"| {n} | {decided}/{total} = {decided / total:.2%} | {grids}/{args.grids} |")
    rng, hits, runs = np.random.default_rng(5), 0, max(1, args.grids // 4)
    for _ in range(runs):
        rows = claims.decide(claims.return_claims(_grid(rng, 5, effect=3.0), reps=args.reps,
                                                  seed=0))
        hits += all(r["verdict"] == claims.SUPPORTED for r in rows
                    if r["where"].startswith("aggregate"))
    print(f"\nScope 3 sd better, 5 seeds: all 6 aggregate comparisons supported in {hits}/{runs} grids")


if __name__ == "__main__":
    main()
