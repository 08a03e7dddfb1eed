"""The seed planner: how many seeds per loss decide an effect of a given size, by simulation
with the shipped tests (``python -m scopeloss.analysis.power``, ``make power``).

From finished runs (the tidy tables of any grid: a pilot preset, the demo) it estimates each
env's seed-to-seed spread (the standard deviation of the final return within cells, pooled
over the losses) and each dataset and experiment's (of the mean per-class precision). It
then simulates the same grid (its envs, losses and candidate) at n seeds per loss, with the
candidate shifted by the effect on every env, and runs the claims table's own procedure on
each simulated grid (``claims.return_claims`` / ``precision_claims`` + ``decide``: exact
permutation tests, Holm within the claim, the same verdicts). A row's power at n is the
share of simulated grids in which it is *supported*; the planner reports, per claim and
kind of row, the fewest seeds per loss with power >= ``--power`` (default 80 %).

* **One effect for every row**: ``--effect-sd`` per-env standard deviations (default 1) on
  every env, for per-env rows and aggregates alike; the aggregates' normalised-score
  equivalent (the mean over envs of effect x sd / the env's normalisation range) is printed
  beside it.
* **The sd's uncertainty is carried**: the simulated spread is the upper bound of a one-sided
  80 % chi-square confidence interval of the pooled sd (its degrees of freedom: runs minus
  cells), so few pilot seeds plan more seeds, not fewer. The effect stays ``effect_sd`` times
  the point estimate.
* **Far from normal, resampled**: an env whose pooled within-cell residuals fail a
  Shapiro-Wilk test at 0.05 (Freeway's 0-or-20 runs) is simulated by resampling those
  residuals (rescaled to the upper sd) around the cell's mean, not from a normal model.
* **Claim D** (the grid's sweeps): the power of showing the default within the
  non-inferiority margin of every value when it truly equals them all.
* **The Monte Carlo floor**: the relabellings are raised until a Monte Carlo p can reach half
  of the smallest Holm step the claim's family can face (``significance.monte_carlo_reps``);
  past ``MAX_REPS`` the plan carries a named warning.

The seed counts searched run up to ``--max-seeds``; above it the planner says so. The
estimate's Monte Carlo error at ``--grids`` simulated grids is about
sqrt(0.8 * 0.2 / grids) in power.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from scopeloss import atomic

from . import claims, significance, stats, tuning_claim
from .aggregate import read_table_if_present
from .reference import (add_loss_styles_argument, add_sweeps_argument, cls_loss_name,
                        env_sort_key, normalisation_range, rl_loss_name, use_loss_styles)
from .runs import COMPLETE, RunFileError
from .seed_plan import seeds_words, summary

EFFECT_SD = 1.0
TARGET_POWER = 0.8
SD_CONFIDENCE = 0.8  # the simulated sd: the upper bound of a one-sided 80 % interval
NORMALITY_ALPHA = 0.05  # Shapiro-Wilk: below it, an env's residuals are resampled
MAX_REPS = 20_000  # Monte Carlo relabellings at most (the exact test's limit)
SEED_STEPS = (2, 3, 5, 8, 12, 20, 30, 50)  # coarse; the counts in between are tried after
ROW_KEY = ["claim_id", "comparison", "where", "metric"]


@dataclass(frozen=True)
class TaskSpread:
    """One env (or dataset / experiment): where its values lie, their spread across seeds
    (``sd``: the pooled estimate; ``sd_sim``: what is simulated, None = ``sd``), how much
    one unit of normalised score is in its own units, and the residuals to resample when
    the env is far from normal (None: normal)."""

    task: str
    mean: float
    sd: float
    score_unit: float
    reference: tuple[float, float] | None
    sd_sim: float | None = None
    residuals: tuple[float, ...] | None = None

    def draw(self, rng: np.random.Generator, size) -> np.ndarray:
        """Values around ``mean`` with this task's simulated spread."""
        sd = self.sd if self.sd_sim is None else self.sd_sim
        if self.residuals is None:
            return rng.normal(self.mean, sd, size=size)
        return self.mean + rng.choice(np.asarray(self.residuals), size=size, replace=True)


def spread_of(task: str, groups: Sequence[np.ndarray], *, score_unit: float,
              reference=None) -> TaskSpread | None:
    """A task's spread from its cells' values (one array per cell): the pooled sd, its
    upper confidence bound, and resampled residuals where Shapiro-Wilk rejects normality."""
    sd, dof = stats.pooled_sd(groups), stats.pooled_dof(groups)
    if not (np.isfinite(sd) and sd > 0):
        return None
    sd_sim = sd * np.sqrt(dof / sps.chi2.ppf(1 - SD_CONFIDENCE, dof))
    residuals = None
    pooled = np.concatenate([(g - g.mean()) * np.sqrt(g.size / (g.size - 1))
                             for g in groups if g.size > 1])
    if pooled.size >= 3 and pooled.std() > 0 and sps.shapiro(pooled).pvalue < NORMALITY_ALPHA:
        residuals = tuple(pooled / pooled.std() * sd_sim)
    mean = float(np.mean(np.concatenate(groups)))
    return TaskSpread(task, mean, sd, score_unit or sd, reference, float(sd_sim), residuals)


def rl_spreads(runs: pd.DataFrame) -> list[TaskSpread]:
    """Each env's spread of final return across seeds, from the finished runs."""
    runs = claims.finished_rl_runs(runs)
    out = []
    for env, g in runs.groupby("env"):
        reference = normalisation_range(env)
        unit = (reference[1] - reference[0]) if reference else float(
            g["final_return"].max() - g["final_return"].min())
        spread = spread_of(env, [x["final_return"].to_numpy(float) for _, x in g.groupby("loss")],
                           score_unit=unit, reference=reference)
        if spread is not None:
            out.append(spread)
    return sorted(out, key=lambda t: env_sort_key(t.task))


def classification_spreads(per_class: pd.DataFrame, summary: pd.DataFrame
                           ) -> list[TaskSpread]:
    """Each dataset / experiment's spread of mean per-class precision across seeds."""
    _, runs = claims.finished_classification_runs(per_class, summary)
    out = []
    for (dataset, exp), g in runs.groupby(["dataset", "experiment"]):
        spread = spread_of(f"{dataset}\0{exp}",
                           [x["precision_mean"].to_numpy(float) for _, x in g.groupby("loss")],
                           score_unit=1.0)
        if spread is not None:
            out.append(spread)
    return out


# ---------------------------------------------------------------------------- simulation
def simulate_rl(spreads: Sequence[TaskSpread], losses: Sequence[str], candidate: str | None,
                n_seeds: int, shift: dict[str, float], rng: np.random.Generator
                ) -> pd.DataFrame:
    """One simulated grid of final returns (the rl_final_runs columns claims read):
    ``shift[env]`` added to the candidate's runs."""
    rows = []
    for t in spreads:
        values = t.draw(rng, (len(losses), n_seeds))
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
                            candidate: str | None, n_seeds: int, shift: dict[str, float],
                            rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One simulated grid of mean per-class precisions: (per_class, summary) as the claims
    read them (one 'class' per run holding its mean)."""
    per_class, summary = [], []
    for t in spreads:
        dataset, exp = t.task.split("\0")
        values = t.draw(rng, (len(losses), n_seeds))
        for i, loss in enumerate(losses):
            for seed in range(n_seeds):
                key = {"dataset": dataset, "experiment": exp, "loss": loss, "seed": seed}
                value = values[i, seed] + (shift[t.task] if loss == candidate else 0.0)
                per_class.append({**key, "precision": value})
                summary.append({**key, "status": COMPLETE, "epochs_run": 0})
    return pd.DataFrame(per_class), pd.DataFrame(summary)


def _claim_rows(kind: str, spreads, losses, candidate, *, n, shift, rng, reps,
                members=(), margin=tuning_claim.MARGIN_SD) -> list[dict]:
    """One simulated grid's decided rows: claim A (C) about ``candidate``, or, with
    ``members`` (a sweep's), claim D with every value equal to the default."""
    seed = int(rng.integers(2**31))
    if kind == "rl":
        runs = simulate_rl(spreads, [m["name"] for m in members] or losses, candidate, n,
                           shift, rng)
        rows = (tuning_claim.rl_rows(runs, members, margin=margin, reps=reps, seed=seed,
                                     ci_reps=1) if members else
                claims.return_claims(runs, reps=reps, seed=seed, candidate=candidate,
                                     ci_reps=1))
    else:
        per_class, summary = simulate_classification(
            spreads, [m["name"] for m in members] or losses, candidate, n, shift, rng)
        if members:
            done, per_run = claims.finished_classification_runs(per_class, summary)
            rows = tuning_claim.classification_rows(per_run, done, members, margin=margin,
                                                    reps=reps, seed=seed, ci_reps=1)
        else:
            rows = claims.precision_claims(per_class, summary, reps=reps, seed=seed,
                                           candidate=candidate, ci_reps=1)
    return claims.decide(rows)


def family_reps(kind, spreads, losses, candidate, *, reps: int, members=(),
                margin=tuning_claim.MARGIN_SD) -> tuple[int, str]:
    """The Monte Carlo relabellings for this design: ``reps`` raised until a Monte Carlo p
    can reach half of the claim's smallest Holm step (at most MAX_REPS), and a warning when
    even that does not."""
    rows = _claim_rows(kind, spreads, losses, candidate, n=2, shift={t.task: 0.0 for t in spreads},
                       rng=np.random.default_rng(0), reps=1, members=members, margin=margin)
    tests = [c for r in rows for c in (r.get("components") or [r]) if "min_p" in r]
    family = max(1, len(tests))
    need = significance.monte_carlo_reps(family, reps)
    if need <= MAX_REPS:
        return need, ""
    step = significance.ALPHA / family
    return MAX_REPS, (f"Monte Carlo floor: with {MAX_REPS} relabellings a p cannot go below "
                      f"{2 / (MAX_REPS + 1):.1e}, above half the smallest Holm step "
                      f"({step:.1e}) of a {family}-row family: its rows' power is understated")


def effect_words(spreads: Sequence[TaskSpread], effect_sd: float) -> str:
    """The effect in per-env sd, with its normalised-score equivalent (mean over envs)."""
    units = [effect_sd * t.sd / t.score_unit for t in spreads if t.score_unit]
    return f"{effect_sd:g} sd (= {np.mean(units):.3g} normalised score)" if units else \
        f"{effect_sd:g} sd"


def power_at(kind: str, spreads: Sequence[TaskSpread], losses: Sequence[str], candidate: str | None,
             n_seeds: int, *, effect_sd: float = EFFECT_SD, grids: int = 200, reps: int = 2000,
             seed: int = 0, members: Sequence[dict] = (),
             margin: float = tuning_claim.MARGIN_SD) -> pd.DataFrame:
    """Each row's power at ``n_seeds`` per loss: the share of simulated grids in which the
    shipped procedure calls it supported. Claims A / C: the candidate ``effect_sd`` sds
    better on every env, every row kind alike. With ``members`` (one kind's sweeps): claim
    D's rows, every value equal to the default."""
    rng = np.random.default_rng(seed)
    shift = {t.task: (0.0 if members else effect_sd * t.sd) for t in spreads}
    reps, warning = family_reps(kind, spreads, losses, candidate, reps=reps, members=members,
                                margin=margin)
    hits: dict[tuple, list[int]] = {}
    for _ in range(grids):
        for row in _claim_rows(kind, spreads, losses, candidate, n=n_seeds, shift=shift,
                               rng=rng, reps=reps, members=members, margin=margin):
            if "p" not in row or row.get("verdict") == claims.NOT_RUN:
                continue
            key = tuple(row[k] for k in ROW_KEY)
            hits.setdefault(key, []).append(row["verdict"] == claims.SUPPORTED)
    table = pd.DataFrame([(*k, n_seeds, float(np.mean(v)), len(v)) for k, v in hits.items()],
                         columns=[*ROW_KEY, "n_seeds", "power", "grids"])
    if members:
        table["effect"] = f"default = every value (margin {margin:g} sd)"
    else:
        table["effect"] = np.where(table["where"].str.startswith("aggregate"),
                                   effect_words(spreads, effect_sd), f"{effect_sd:g} sd")
    table["warning"] = warning
    return table


def seeds_needed(kind: str, spreads: Sequence[TaskSpread], losses: Sequence[str],
                 candidate: str | None, *, target: float = TARGET_POWER, max_seeds: int = 30,
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
        needed.append((*key, g["effect"].iloc[0], int(ok.min()) if len(ok) else np.nan,
                       "; ".join(sorted({w for w in g["warning"] if w}))))
    out = pd.DataFrame(needed, columns=[*ROW_KEY, "effect", "seeds_needed", "warning"])
    out["max_seeds"] = max_seeds
    return out


# ---------------------------------------------------------------------------- from tables
def plan_tables(tables: str | Path, *, rl_candidate: str = "scope",
                classification_candidate: str = "scope", sweeps: dict | None = None,
                margin: float = tuning_claim.MARGIN_SD, **options) -> pd.DataFrame:
    """``seeds_needed`` for claims A (from rl_final_runs) and C (from the classification
    tables) of the grid whose tidy tables are in ``tables`` (the cells ``sweeps`` added
    left out, as the claims leave them out), and for claim D on those sweeps."""
    tables = Path(tables)
    sweeps = sweeps or {}
    parts = []
    all_runs = read_table_if_present(tables, "rl_final_runs")
    rl_members = sweeps.get("rl") or []
    if all_runs is not None and not all_runs.empty:
        runs = all_runs[~all_runs["loss"].isin(tuning_claim.sweep_variants(rl_members))]
        spreads = rl_spreads(runs)
        losses = sorted(set(claims.finished_rl_runs(runs)["loss"]))
        if spreads and rl_candidate in losses and len(losses) > 1:
            parts.append(seeds_needed("rl", spreads, losses, rl_candidate, **options))
        swept = {m["name"] for m in rl_members}
        spreads = rl_spreads(all_runs)
        if rl_members and spreads and swept <= set(all_runs["loss"]):
            parts.append(seeds_needed("rl", spreads, [], None, members=rl_members,
                                      margin=margin, **options))
    per_class = read_table_if_present(tables, "classification_per_class")
    summary = read_table_if_present(tables, "classification_summary")
    cls_members = sweeps.get("classification") or []
    if per_class is not None and summary is not None and not summary.empty:
        variants = tuning_claim.sweep_variants(cls_members)
        keep = ~per_class["loss"].isin(variants)
        spreads = classification_spreads(per_class[keep],
                                         summary[~summary["loss"].isin(variants)])
        losses = sorted(set(summary.loc[(summary["status"] == COMPLETE)
                                        & ~summary["loss"].isin(variants), "loss"]))
        if spreads and classification_candidate in losses and len(losses) > 1:
            parts.append(seeds_needed("classification", spreads, losses,
                                      classification_candidate, **options))
        spreads = classification_spreads(per_class, summary)
        if cls_members and spreads and {m["name"] for m in cls_members} <= set(summary["loss"]):
            parts.append(seeds_needed("classification", spreads, [], None,
                                      members=cls_members, margin=margin, **options))
    if not parts:
        raise NothingToPlan(f"{tables} has no finished runs with two or more seeds of the "
                            "candidate and another loss to estimate a spread from")
    return pd.concat(parts, ignore_index=True)


class NothingToPlan(RunFileError):
    """The tables hold no spread to plan from (e.g. every loss ran one seed)."""


def plan_markdown(table: pd.DataFrame, *, target: float, max_seeds: int, grids: int,
                  names: dict[str, str] | None = None) -> str:
    names = names or {}
    lines = ["# Seeds per loss that decide an effect (seed planner)", "",
             f"Power {target:.0%} under the shipped procedure (exact permutation tests, Holm "
             f"within the claim), estimated on {grids} simulated grids per seed count (Monte "
             f"Carlo error about ±{np.sqrt(target * (1 - target) / grids):.2f} in power). "
             "Claims A and C: the candidate shifted by one effect, in per-env sd, on every "
             "env, per-env rows and aggregates alike (the aggregates' normalised-score "
             "equivalent beside it). Claim D: every swept value equal to the default. The "
             "simulated spread is each env's pooled sd at the upper bound of its one-sided "
             f"{SD_CONFIDENCE:.0%} chi-square interval (few pilot seeds plan more seeds); envs "
             "whose residuals fail a Shapiro-Wilk test are simulated by resampling them.",
             "", "| Claim | Rows | Effect | Rows of the claim | Seeds per loss |",
             "|:---|:---|:---|---:|---:|"]
    for row in summary(table).itertuples(index=False):
        what = row.rows.replace("{candidate}", names.get(row.claim_id, "candidate"))
        lines.append(f"| {row.claim_id} | {what} | {row.effect} | {row.n_rows} | "
                     f"{seeds_words(row.seeds_needed, row.max_seeds)} |")
    warnings = sorted({w for w in table.get("warning", pd.Series(dtype=str)).fillna("")
                       for w in w.split("; ") if w})
    lines += ["", *(f"**Warning**: {w}." for w in warnings)] if warnings else []
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.analysis.power",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", required=True, type=Path,
                        help="the tidy tables of finished runs (a pilot grid, the demo)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the plan here as .md and .csv (default: print it)")
    parser.add_argument("--effect-sd", type=float, default=EFFECT_SD,
                        help="the effect in per-env sd, for every kind of row")
    parser.add_argument("--noninferiority-margin", type=float, default=tuning_claim.MARGIN_SD,
                        help="claim D's margin in per-env sd (claims.noninferiority_margin)")
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
                     ("effect_sd", args.effect_sd > 0),
                     ("noninferiority_margin", args.noninferiority_margin > 0)):
        if not ok:
            parser.error(f"--{name.replace('_', '-')}: out of range, got {getattr(args, name)}")
    try:
        table = plan_tables(args.tables, rl_candidate=args.rl_candidate,
                            classification_candidate=args.classification_candidate,
                            target=args.power, max_seeds=args.max_seeds,
                            effect_sd=args.effect_sd, margin=args.noninferiority_margin,
                            grids=args.grids, reps=args.reps, seed=args.seed,
                            sweeps=args.sweeps)
    except NothingToPlan as err:  # a grid of one seed, say: said in the plan, not an error
        table, text = pd.DataFrame(columns=[*ROW_KEY, "effect", "seeds_needed",
                                            "warning", "max_seeds"]), (
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
