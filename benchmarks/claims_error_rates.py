"""Error rates and power of the claims table's verdicts on simulated grids (docs/statistics.md):
``python benchmarks/claims_error_rates.py [--grids 200] [--claim a|d]``.

Claim D (``--claim d``): a sweep of three values (RL: over 5 envs) or two (classification:
one dataset and experiment), every cell normal with sd 1; the default either 1 sd below one
other value, 1 sd below all of them, exactly the margin below one (the test's level), or
equal to all (the power). Decided by the shipped
``tuning_claim`` rows + ``claims.decide`` at the default margin (0.5 sd); reported: the
share of grids whose row reads supported, and contradicted.

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
import pandas as pd

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


D_DESIGNS = (("rl", 5, 3, "presets/sensitivity.yaml, RL"), ("rl", 5, 10, ""),
             ("rl", 5, 20, ""), ("classification", 1, 5, "presets/sensitivity.yaml, classification"),
             ("classification", 1, 20, ""), ("classification", 1, 50, ""))
D_SCENARIOS = {"default 0.5 sd below one value (at the margin: the level)": {"v_hi": 0.5},
               "default 1 sd below one value": {"v_hi": 1.0},
               "default 1 sd below every value": {"v_hi": 1.0, "v_lo": 1.0},
               "default equal to every value (power)": {}}


def claim_d_rates(kind: str, tasks: int, seeds: int, shift: dict, grids: int, reps: int,
                  rng) -> dict:
    from scopeloss.analysis import tuning_claim

    names = ["v_lo", "default", "v_hi"] if kind == "rl" else ["default", "v_hi"]
    members = [{"swept": "scope", "param": "alpha", "value": float(i), "name": n,
                "default": n == "default"} for i, n in enumerate(names)]
    supported = contradicted = 0
    for _ in range(grids):
        values = {(t, n): rng.normal(0, 1, seeds) + shift.get(n, 0.0)
                  for t in range(tasks) for n in names}
        if kind == "rl":
            runs = pd.DataFrame([{"env": f"E{t}", "loss": n, "seed": i, "final_return": v,
                                  "normalized_final_return": np.nan, "total_steps": 0,
                                  "status": "complete"}
                                 for (t, n), vs in values.items() for i, v in enumerate(vs)])
            rows = tuning_claim.rl_rows(runs, members, margin=tuning_claim.MARGIN_SD,
                                        reps=reps, seed=0, ci_reps=1)
        else:
            per_run = pd.DataFrame([{"dataset": "d", "experiment": "plain", "loss": n,
                                     "seed": i, "precision_mean": v}
                                    for (t, n), vs in values.items() for i, v in enumerate(vs)])
            done = per_run.assign(epochs_run=0)
            rows = tuning_claim.classification_rows(per_run, done, members,
                                                    margin=tuning_claim.MARGIN_SD, reps=reps,
                                                    seed=0, ci_reps=1)
        (row,) = claims.decide(rows)
        supported += row["verdict"] == claims.SUPPORTED
        contradicted += row["verdict"] == claims.CONTRADICTED
    return {"supported": supported / grids, "contradicted": contradicted / grids}


def main_claim_d(grids: int, reps: int) -> None:
    print(f"Claim D: {grids} simulated grids per design and scenario; margin "
          "0.5 sd; Monte Carlo error of a 5 % rate about ±"
          f"{np.sqrt(0.05 * 0.95 / grids):.1%}.\n")
    print("| design | scenario | P(supported) | P(contradicted) |")
    print("|---|---|---:|---:|")
    for kind, tasks, seeds, what in D_DESIGNS:
        for i, (scenario, shift) in enumerate(D_SCENARIOS.items()):
            r = claim_d_rates(kind, tasks, seeds, shift, grids, reps,
                              np.random.default_rng(100 * seeds + 10 * tasks + i))
            label = (f"{kind}: {tasks} env{'s' if tasks > 1 else ''} × {seeds} seeds, "
                     f"{3 if kind == 'rl' else 2} values") + (f" ({what})" if what else "")
            print(f"| {label} | {scenario} | {r['supported']:.1%} | {r['contradicted']:.1%} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", type=int, default=200)
    # the Monte Carlo p cannot go below 2/(reps + 1): it must reach 0.05/m (Holm, m rows)
    parser.add_argument("--reps", type=int, default=2000, help="Monte Carlo relabellings")
    parser.add_argument("--claim", choices=("a", "d"), default="a")
    args = parser.parse_args()
    if args.claim == "d":
        main_claim_d(args.grids, args.reps)
        return
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
