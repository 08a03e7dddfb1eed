"""The seed planner: how many seeds per loss decide an effect of a given size, by simulation
with the shipped tests (``python -m scopeloss.analysis.power``, ``make power``).

From finished runs (the tidy tables of any grid: a pilot preset, the demo) it estimates each
env's seed-to-seed spread (the standard deviation of the final return across seeds, pooled
over the losses) and each dataset's (of the mean per-class precision). It then simulates the
same grid (its envs, losses and candidate) at n seeds per loss, with the candidate shifted
by the effect on every env, and runs the claims table's own procedure on each simulated grid
(``claims.return_claims`` / ``precision_claims`` + ``decide``: exact permutation tests,
Holm within the claim, the same verdicts). A row's power at n is the share of simulated
grids in which it is *supported*; the planner reports, per claim and row, the fewest seeds
per loss with power >= ``--power`` (default 80 %) for:

* per-env / per-table rows: an effect of ``--effect-sd`` standard deviations (default 1);
* aggregate rows: ``--effect-score`` of the normalised score on every env (default 0.05:
  5 % of the random-to-reference range), converted to returns by each env's normalisation.

Envs without reference scores are min-max normalised over the grid's runs, so their
aggregate effect is taken relative to the observed range of their final returns. Every
simulated value is normal with the env's mean and spread (``mean`` only locates it). The
seed counts searched run up to ``--max-seeds``; above it the planner says so. The estimate's
Monte Carlo error at ``--grids`` simulated grids is about sqrt(0.8 * 0.2 / grids) in power.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from scopeloss import atomic

from . import claims
from .aggregate import read_table_if_present
from .reference import (add_loss_styles_argument, add_sweeps_argument, cls_loss_name,
                        env_sort_key,
                        normalisation_range, rl_loss_name, use_loss_styles)
from .runs import COMPLETE, RunFileError

EFFECT_SD = 1.0
EFFECT_SCORE = 0.05
TARGET_POWER = 0.8
SEED_STEPS = (2, 3, 5, 8, 12, 20, 30, 50)  # coarse; the counts in between are tried after
ROW_KEY = ["claim_id", "comparison", "where", "metric"]


@dataclass(frozen=True)
class TaskSpread:
    """One env (or dataset / experiment): where its values lie, their spread across seeds,
    and how much one unit of normalised score is in its own units."""

    task: str
    mean: float
    sd: float
    score_unit: float
    reference: tuple[float, float] | None


def _pooled_sd(groups: Sequence[np.ndarray]) -> float:
    """The standard deviation within groups, pooled (groups of one value do not count)."""
    num = sum(((g - g.mean()) ** 2).sum() for g in groups if g.size > 1)
    dof = sum(g.size - 1 for g in groups if g.size > 1)
    return float(np.sqrt(num / dof)) if dof else np.nan


def rl_spreads(runs: pd.DataFrame) -> list[TaskSpread]:
    """Each env's spread of final return across seeds, from the finished runs."""
    runs = claims.finished_rl_runs(runs)
    out = []
    for env, g in runs.groupby("env"):
        sd = _pooled_sd([x["final_return"].to_numpy(float) for _, x in g.groupby("loss")])
        if not np.isfinite(sd) or sd <= 0:
            continue
        reference = normalisation_range(env)
        unit = (reference[1] - reference[0]) if reference else float(
            g["final_return"].max() - g["final_return"].min()) or sd
        out.append(TaskSpread(env, float(g["final_return"].mean()), sd, unit, reference))
    return sorted(out, key=lambda t: env_sort_key(t.task))


def classification_spreads(per_class: pd.DataFrame, summary: pd.DataFrame
                           ) -> list[TaskSpread]:
    """Each dataset / experiment's spread of mean per-class precision across seeds."""
    _, runs = claims.finished_classification_runs(per_class, summary)
    out = []
    for (dataset, exp), g in runs.groupby(["dataset", "experiment"]):
        sd = _pooled_sd([x["precision_mean"].to_numpy(float) for _, x in g.groupby("loss")])
        if np.isfinite(sd) and sd > 0:
            out.append(TaskSpread(f"{dataset}\0{exp}", float(g["precision_mean"].mean()), sd,
                                  1.0, None))
    return out


# ---------------------------------------------------------------------------- simulation
def simulate_rl(spreads: Sequence[TaskSpread], losses: Sequence[str], candidate: str,
                n_seeds: int, shift: dict[str, float], rng: np.random.Generator
                ) -> pd.DataFrame:
    """One simulated grid of final returns (the rl_final_runs columns claims read):
    ``shift[env]`` added to the candidate's runs."""
    rows = []
    for t in spreads:
        values = rng.normal(t.mean, t.sd, size=(len(losses), n_seeds))
        for i, loss in enumerate(losses):
            for seed in range(n_seeds):
                value = values[i, seed] + (shift[t.task] if loss == candidate else 0.0)
                norm = ((value - t.reference[0]) / (t.reference[1] - t.reference[0])
                        if t.reference else np.nan)
                rows.append({"env": t.task, "loss": loss, "seed": seed,
                             "final_return": value, "normalized_final_return": norm,
                             "total_steps": 0, "status": COMPLETE})
    return pd.DataFrame(rows)


def simulate_classification(spreads: Sequence[TaskSpread], losses: Sequence[str],
                            candidate: str, n_seeds: int, shift: dict[str, float],
                            rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One simulated grid of mean per-class precisions: (per_class, summary) as the claims
    read them (one 'class' per run holding its mean)."""
    per_class, summary = [], []
    for t in spreads:
        dataset, exp = t.task.split("\0")
        values = rng.normal(t.mean, t.sd, size=(len(losses), n_seeds))
        for i, loss in enumerate(losses):
            for seed in range(n_seeds):
                key = {"dataset": dataset, "experiment": exp, "loss": loss, "seed": seed}
                value = values[i, seed] + (shift[t.task] if loss == candidate else 0.0)
                per_class.append({**key, "precision": value})
                summary.append({**key, "status": COMPLETE, "epochs_run": 0})
    return pd.DataFrame(per_class), pd.DataFrame(summary)


def _claim_rows(kind: str, spreads, losses, candidate, *, n, shift, rng, reps) -> list[dict]:
    if kind == "rl":
        runs = simulate_rl(spreads, losses, candidate, n, shift, rng)
        rows = claims.return_claims(runs, reps=reps, seed=int(rng.integers(2**31)),
                                    candidate=candidate, ci_reps=1)
    else:
        per_class, summary = simulate_classification(spreads, losses, candidate, n, shift, rng)
        rows = claims.precision_claims(per_class, summary, reps=reps,
                                       seed=int(rng.integers(2**31)), candidate=candidate,
                                       ci_reps=1)
    return claims.decide(rows)


def power_at(kind: str, spreads: Sequence[TaskSpread], losses: Sequence[str], candidate: str,
             n_seeds: int, *, effect_sd: float = EFFECT_SD, effect_score: float = EFFECT_SCORE,
             grids: int = 200, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each row's power at ``n_seeds`` per loss: the share of simulated grids in which the
    shipped procedure calls it supported. Single-task rows are simulated with an effect of
    ``effect_sd`` standard deviations, aggregate rows with ``effect_score`` of the
    normalised score (two simulations)."""
    rng = np.random.default_rng(seed)
    scenarios = {"single": {t.task: effect_sd * t.sd for t in spreads},
                 "aggregate": {t.task: effect_score * t.score_unit for t in spreads}}
    hits: dict[tuple, list[int]] = {}
    for scenario, shift in scenarios.items():
        if kind == "classification" and scenario == "aggregate":
            continue  # claim C has no aggregate rows
        for _ in range(grids):
            for row in _claim_rows(kind, spreads, losses, candidate, n=n_seeds, shift=shift, rng=rng,
                                   reps=reps):
                if claims.is_aggregate(row) != (scenario == "aggregate") or "p" not in row:
                    continue
                key = tuple(row[k] for k in ROW_KEY)
                hits.setdefault(key, []).append(row["verdict"] == claims.SUPPORTED)
    table = pd.DataFrame([(*k, n_seeds, float(np.mean(v)), len(v)) for k, v in hits.items()],
                         columns=[*ROW_KEY, "n_seeds", "power", "grids"])
    table["effect"] = np.where(table["where"].str.startswith("aggregate"),
                               f"{effect_score:g} normalised score", f"{effect_sd:g} sd")
    return table


def seeds_needed(kind: str, spreads: Sequence[TaskSpread], losses: Sequence[str],
                 candidate: str, *, target: float = TARGET_POWER, max_seeds: int = 30,
                 steps: Sequence[int] = SEED_STEPS, **options) -> pd.DataFrame:
    """Per row: the fewest seeds per loss with power >= ``target`` (NaN when even
    ``max_seeds`` falls short): the coarse ``steps`` up to ``max_seeds`` until every row
    reaches it, then, per kind of row (``summary``), bisection between the last count
    below and the first at the target (power grows with the seeds)."""
    steps = sorted({n for n in steps if n <= max_seeds} | {max_seeds})
    tried: dict[int, pd.DataFrame] = {}

    def at(n: int) -> pd.DataFrame:
        if n not in tried:
            tried[n] = power_at(kind, spreads, losses, candidate, n, **options)
        return tried[n]

    def kinds_ok(n: int) -> dict[str, bool]:
        """Per kind of row: whether all its rows reach the target at n seeds."""
        table = at(n).assign(seeds_needed=np.where(at(n)["power"] >= target, n, np.nan),
                             max_seeds=max_seeds)
        return {r.rows: not pd.isna(r.seeds_needed) for r in summary(table).itertuples()}

    for n in steps:  # coarse, until every row reaches the target
        if all(kinds_ok(n).values()):
            break
    for what in kinds_ok(steps[0]):
        below = [s for s in tried if not kinds_ok(s)[what]]
        above = [s for s in tried if kinds_ok(s)[what]]
        if not above:
            continue
        lo, hi = max([s for s in below if s < min(above)], default=steps[0] - 1), min(above)
        while hi - lo > 1:  # bisection for this kind of row
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if kinds_ok(mid)[what] else (mid, hi)
    powers = pd.concat(tried.values(), ignore_index=True)
    needed = []
    for key, g in powers.groupby(ROW_KEY, sort=False):
        ok = g.loc[g["power"] >= target, "n_seeds"]
        needed.append((*key, g["effect"].iloc[0], int(ok.min()) if len(ok) else np.nan))
    out = pd.DataFrame(needed, columns=[*ROW_KEY, "effect", "seeds_needed"])
    out["max_seeds"] = max_seeds
    return out


# ---------------------------------------------------------------------------- from tables
def plan_tables(tables: str | Path, *, rl_candidate: str = "scope",
                classification_candidate: str = "scope", sweeps: dict | None = None,
                **options) -> pd.DataFrame:
    """``seeds_needed`` for claims A (from rl_final_runs) and C (from the classification
    tables) of the grid whose tidy tables are in ``tables`` (the cells ``sweeps`` added
    left out, as the claims leave them out)."""
    tables = Path(tables)
    sweeps = sweeps or {}
    parts = []
    runs = read_table_if_present(tables, "rl_final_runs")
    if runs is not None:
        runs = runs[~runs["loss"].isin(claims.sweep_variants(sweeps.get("rl") or []))]
    if runs is not None and not runs.empty:
        spreads = rl_spreads(runs)
        losses = sorted(set(claims.finished_rl_runs(runs)["loss"]))
        if spreads and rl_candidate in losses and len(losses) > 1:
            parts.append(seeds_needed("rl", spreads, losses, rl_candidate, **options))
    per_class = read_table_if_present(tables, "classification_per_class")
    summary = read_table_if_present(tables, "classification_summary")
    if per_class is not None and summary is not None and not summary.empty:
        variants = claims.sweep_variants(sweeps.get("classification") or [])
        per_class = per_class[~per_class["loss"].isin(variants)]
        summary = summary[~summary["loss"].isin(variants)]
        spreads = classification_spreads(per_class, summary)
        losses = sorted(set(summary.loc[summary["status"] == COMPLETE, "loss"]))
        if spreads and classification_candidate in losses and len(losses) > 1:
            parts.append(seeds_needed("classification", spreads, losses,
                                      classification_candidate, **options))
    if not parts:
        raise NothingToPlan(f"{tables} has no finished runs with two or more seeds of the "
                            "candidate and another loss to estimate a spread from")
    return pd.concat(parts, ignore_index=True)


class NothingToPlan(RunFileError):
    """The tables hold no spread to plan from (e.g. every loss ran one seed)."""


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim and kind of row (single env / table, or each aggregate metric): the seeds
    per loss that give every such row the target power (NaN: not within the counts tried)."""
    kind = np.where(table["where"].str.startswith("aggregate"), table["metric"],
                    np.where(table["claim_id"] == "C", "per dataset / experiment", "per env"))
    rows = []
    for (claim_id, what), g in table.assign(kind=kind).groupby(["claim_id", "kind"],
                                                                sort=False):
        need = np.nan if g["seeds_needed"].isna().any() else int(g["seeds_needed"].max())
        rows.append({"claim_id": claim_id, "rows": what, "effect": g["effect"].iloc[0],
                     "n_rows": len(g), "seeds_needed": need,
                     "max_seeds": int(g["max_seeds"].iloc[0])})
    return pd.DataFrame(rows)


def seeds_words(need: float, max_seeds: int) -> str:
    return f"more than {max_seeds}" if pd.isna(need) else str(int(need))


def plan_markdown(table: pd.DataFrame, *, target: float, max_seeds: int, grids: int,
                  names: dict[str, str] | None = None) -> str:
    names = names or {}
    lines = ["# Seeds per loss that decide an effect (seed planner)", "",
             f"Power {target:.0%} under the shipped procedure (exact permutation tests, Holm "
             f"within the claim), estimated on {grids} simulated grids per seed count (Monte "
             f"Carlo error about ±{np.sqrt(target * (1 - target) / grids):.2f} in power), "
             "the candidate shifted by the effect on every env and every other loss alike.",
             "", "| Claim | Rows | Effect | Rows of the claim | Seeds per loss |",
             "|:---|:---|:---|---:|---:|"]
    for row in summary(table).itertuples(index=False):
        what = row.rows.replace("{candidate}", names.get(row.claim_id, "candidate"))
        lines.append(f"| {row.claim_id} | {what} | {row.effect} | {row.n_rows} | "
                     f"{seeds_words(row.seeds_needed, row.max_seeds)} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.analysis.power",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", required=True, type=Path,
                        help="the tidy tables of finished runs (a pilot grid, the demo)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the plan here as .md and .csv (default: print it)")
    parser.add_argument("--effect-sd", type=float, default=EFFECT_SD)
    parser.add_argument("--effect-score", type=float, default=EFFECT_SCORE)
    parser.add_argument("--power", type=float, default=TARGET_POWER)
    parser.add_argument("--grids", type=int, default=200, help="simulated grids per count")
    parser.add_argument("--max-seeds", type=int, default=30)
    parser.add_argument("--reps", type=int, default=2000,
                        help="Monte Carlo relabellings beyond the exact limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rl-candidate", default="scope")
    parser.add_argument("--classification-candidate", default="scope")
    add_sweeps_argument(parser, "their added cells are left out")
    add_loss_styles_argument(parser)
    args = parser.parse_args(argv)
    use_loss_styles(args.loss_styles)
    for name, ok in (("power", 0 < args.power < 1), ("grids", args.grids >= 10),
                     ("max_seeds", args.max_seeds >= 2), ("reps", args.reps >= 100),
                     ("effect_sd", args.effect_sd > 0), ("effect_score", args.effect_score > 0)):
        if not ok:
            parser.error(f"--{name.replace('_', '-')}: out of range, got {getattr(args, name)}")
    try:
        table = plan_tables(args.tables, rl_candidate=args.rl_candidate,
                            classification_candidate=args.classification_candidate,
                            target=args.power, max_seeds=args.max_seeds,
                            effect_sd=args.effect_sd, effect_score=args.effect_score,
                            grids=args.grids, reps=args.reps, seed=args.seed,
                            sweeps=args.sweeps)
    except NothingToPlan as err:  # a grid of one seed, say: said in the plan, not an error
        table, text = pd.DataFrame(columns=[*ROW_KEY, "effect", "seeds_needed",
                                            "max_seeds"]), (
            f"# Seeds per loss that decide an effect (seed planner)\n\nNo plan: {err}.\n")
    except RunFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    else:
        text = plan_markdown(table, target=args.power, max_seeds=args.max_seeds,
                             grids=args.grids, names={"A": rl_loss_name(args.rl_candidate),
                                                      "C": cls_loss_name(
                                                          args.classification_candidate)})
    if args.out is None:
        print(text)
    else:
        atomic.write_text(args.out.with_suffix(".md"), text)
        atomic.write_csv(args.out.with_suffix(".csv"), table)
        print(f"wrote {args.out.with_suffix('.md')}, {args.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
