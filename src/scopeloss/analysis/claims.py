"""The paper's claims, checked on whatever grid ran (demo, MinAtar preset, paper grid).

``python -m scopeloss.analysis.claims --tables results/tables --out results/tables/claims.md``
writes ``claims.md`` and ``claims.csv`` (same stem) from the tidy tables:

Every claim is about a candidate loss (``rl.candidate``, ``classification.candidate``:
Scope unless the config names another) against every other loss of the grid; below, Scope.

A. *Scope beats each other policy loss* — per env: the difference of mean final return
   (Scope - X) across seeds; in aggregate: the IQM difference of normalised final scores
   and P(Scope > X) (Agarwal et al. 2021), stratified bootstrap across seeds.
B. *Scope keeps more exploration* — per env: final-phase policy entropy (Scope - X,
   claimed > 0) and mean max-action probability (Scope - X, claimed < 0); in aggregate:
   P(Scope's entropy higher) and P(Scope's max-action probability lower).
C. *Scope has the highest mean per-class precision in Tables 1 and 2* — per dataset and
   experiment: the difference of mean per-class precision (Scope - X) across seeds; and
   the field's few-shot accuracy (Scope - X), in the same Holm family.

Each row gives the estimate, a 95% bootstrap CI across seeds (a description only), the
fewest seeds on either side, the two-sided p of an exact permutation test across seeds
(runs relabelled within each env for aggregates; ``significance``), that p adjusted by Holm
within the claim, and a verdict: *supported* when the adjusted p is at most 0.05 and the
estimate lies on the claimed side, *contradicted* when it is at most 0.05 on the other side,
*underpowered* when the design cannot reach p 0.05 at all (2 vs 2 or 3 vs 3 seeds), else
*inconclusive* (at this budget); with one seed there is no test. Only finished runs
count. A part of the grid that did not run (no RL, no classification, no Scope run) gives
a row saying 'not run'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from scopeloss import atomic

from . import loss_cost, significance, stats, tuning_claim
from .aggregate import read_table_if_present
from .reference import (
    add_loss_styles_argument,
    add_sweeps_argument,
    cls_loss_name,
    rl_loss_name,
    use_loss_styles,
)
from .runs import RunFileError
from .seed_plan import seeds_words
from .seed_plan import summary as plan_summary

from .claim_rows import (AGGREGATE, CLAIMS, COLUMNS, CONTRADICTED, INCONCLUSIVE, NOT_RUN,  # noqa: F401
                         ONE_SEED, SUPPORTED, UNDERPOWERED, decide, is_aggregate, not_run,
                         verdict)
from .precision_claims import finished_classification_runs, precision_claims  # noqa: F401
from .rl_claims import exploration_claims, finished_rl_runs, return_claims  # noqa: F401


# ---------------------------------------------------------------------------- table
def claims_table(tables: str | Path, *, rl: bool = True, classification: bool = True,
                 reps: int = stats.DEFAULT_REPS, seed: int = 0, rl_candidate: str = "scope",
                 classification_candidate: str = "scope", sweeps: dict | None = None,
                 seed_plan: pd.DataFrame | None = None,
                 margin: float = tuning_claim.MARGIN_SD) -> pd.DataFrame:
    """Every claim's rows, about ``rl_candidate`` (A, B) and ``classification_candidate`` (C):
    the loss each claim compares with every other loss of the grid; and claim D for the
    grid's ``sweeps`` (``scopeloss.grid.sweeps_json``: ``{"rl": [member, ...],
    "classification": [...]}``), whose added cells stay out of A-C, tested for
    non-inferiority at ``margin`` per-task sd (``tuning_claim``)."""
    tables = Path(tables)
    sweeps = sweeps or {}
    rl_members, cls_members = sweeps.get("rl") or [], sweeps.get("classification") or []
    rows, swept = [], []
    runs = read_table_if_present(tables, "rl_final_runs") if rl else None
    if runs is None or runs.empty:
        reason = "no RL runs in this grid" if rl else "RL not part of this grid"
        rows += [not_run("A", reason), not_run("B", reason)]
    else:
        if rl_members:
            swept += tuning_claim.rl_rows(runs, rl_members, margin=margin, reps=reps,
                                          seed=seed)
        runs = runs[~runs["loss"].isin(tuning_claim.sweep_variants(rl_members))]
        rows += return_claims(runs, reps=reps, seed=seed, candidate=rl_candidate)
        updates = read_table_if_present(tables, "rl_updates")
        rows += (exploration_claims(runs, updates, reps=reps, seed=seed,
                                    candidate=rl_candidate)
                 if updates is not None else [not_run("B", "no rl_updates table")])
    per_class = (
        read_table_if_present(tables, "classification_per_class") if classification else None
    )
    summary = read_table_if_present(tables, "classification_summary") if classification else None
    if per_class is None or summary is None or summary.empty:
        rows.append(not_run("C", "no classification runs in this grid" if classification
                             else "classification not part of this grid"))
    else:
        if cls_members:
            done, per_run = finished_classification_runs(per_class, summary)
            swept += tuning_claim.classification_rows(per_run, done, cls_members,
                                                      margin=margin, reps=reps, seed=seed)
        variants = tuning_claim.sweep_variants(cls_members)
        rows += precision_claims(per_class[~per_class["loss"].isin(variants)],
                                 summary[~summary["loss"].isin(variants)], reps=reps,
                                 seed=seed, candidate=classification_candidate)
    rows += swept or [not_run("D", "no sweep in this grid (rl.sweeps, "
                                    "classification.sweeps)")]
    names = {"A": rl_loss_name(rl_candidate), "B": rl_loss_name(rl_candidate),
             "C": cls_loss_name(classification_candidate), "D": ""}
    for row in rows:  # the texts name the candidate by its label
        for key in ("claim", "comparison", "metric", "note"):
            row[key] = row[key].replace("{candidate}", names[row["claim_id"]])
    table = pd.DataFrame(decide(rows), columns=COLUMNS)
    table.loc[table["claim_id"] == "D", "claim"] = tuning_claim.CLAIM.format(margin=margin)
    table.attrs["candidates"] = {"rl": names["A"], "classification": names["C"]}
    table.attrs["step_cost"] = loss_cost.cost_lines(runs, summary)  # not a claim
    if seed_plan is not None:
        table.attrs["seed_plan"] = plan_summary(seed_plan) if not seed_plan.empty else seed_plan
    return table


def _fmt(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.4g}"


def _ci(row) -> str:
    if row.verdict == NOT_RUN:
        return "–"
    if row.n_seeds < 2:
        return "one seed"
    return f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]"


def _p(value: float) -> str:
    return "–" if pd.isna(value) else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


def claims_markdown(table: pd.DataFrame) -> str:
    cands = table.attrs.get("candidates") or {"rl": "Scope", "classification": "SL"}
    lines = [
        "# The paper's claims, checked on this grid",
        "",
        "Computed from the tidy tables of the grid that ran, at the budgets in the "
        "Budget column (a demo or preset budget is not the paper's). Estimate: the "
        "candidate (RL: "
        + cands["rl"]
        + "; classification: "
        + cands["classification"]
        + ") minus the other loss, or P(candidate better); 95% CI: percentile bootstrap across "
        "seeds (stratified by env for aggregates), a description only. p: two-sided "
        "exact permutation test across seeds (runs relabelled within each env for "
        "aggregates; Monte Carlo beyond 20,000 relabellings); p adj: Holm within the "
        "claim. Verdict: *supported* / *contradicted* if p adj ≤ 0.05 with the "
        "estimate on the claimed / the other side; *underpowered* if no data could "
        "decide the row at this design: its smallest possible p (2 vs 2 seeds: 1/3; "
        "3 vs 3: 0.1; 5 vs 5: 0.0079) is above the most lenient Holm step it could "
        "reach behind the claim's other rows (column Reachable α); else *inconclusive* "
        "(the data could have decided it and did not). Claim D is a non-inferiority test: "
        "each other value of a sweep against the default, the default's runs shifted up by "
        "the margin (per-task sd, declared before the data) and a one-sided permutation "
        "test; *supported* only if, after Holm over all of D's tests, the default is shown "
        "within the margin of every value; *contradicted* if a two-sided test (Holm) finds "
        "it worse than one; p and p adj are the largest over the values. One seed: no test. "
        "Seeds: the fewest on either side (per env for "
        "aggregates). Only finished runs count.",
        "",
    ]
    for claim_id, claim in CLAIMS.items():
        part = table[table["claim_id"] == claim_id].copy()
        part.attrs.update(seed_plan=table.attrs.get("seed_plan"),
                          names={"A": cands["rl"], "C": cands["classification"]})
        counts = part["verdict"].value_counts()
        claim = part["claim"].iloc[0] if len(part) else claim
        lines += [f"## {claim_id}. {claim}", "",
                  "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "."
                  + _design_words(part), "",
                  "| Comparison | Where | Metric | Claimed | Estimate | 95% CI | Seeds | p "
                  "| p adj | Reachable α | Budget | Verdict | Note |",
                  "|:---|:---|:---|:---:|---:|:---:|---:|---:|---:|---:|:---|:---|:---|"]
        for row in part.itertuples(index=False):
            lines.append("| " + " | ".join([
                row.comparison, row.where, row.metric, row.claimed, _fmt(row.estimate),
                _ci(row), str(row.n_seeds) if row.verdict != NOT_RUN else "–", _p(row.p),
                _p(row.p_adj), _p(row.reachable_alpha), row.budget, f"**{row.verdict}**",
                row.note or ""]) + " |")
        lines.append("")
    costs = table.attrs.get("step_cost") or {}
    if costs:
        lines += ["## What each loss costs per step", "",
                  "From the runs' own timings (scopeloss.analysis.loss_cost); not a claim. "
                  "The claims above are on final scores (the last window of episodes; the "
                  "best-validation epoch's test metrics), never on the best over training.",
                  "", *(f"- {line}" for line in costs.values()), ""]
    return "\n".join(lines)


def _design_words(part: pd.DataFrame) -> str:
    """What this claim's design can decide: rows decidable at all, and the seeds per loss
    with which every row could be (the exact test's floor below Holm's strictest step)."""
    tested = part[part["p"].notna()]
    if tested.empty:
        return ""
    decidable = int((tested["verdict"] != UNDERPOWERED).sum())
    words = (f" This design can decide {decidable} of its {len(tested)} tested rows; every "
             f"row could be decided with {significance.seeds_needed(len(tested))} seeds per "
             f"loss ({len(tested)} comparisons, Holm)")
    descriptive = part["note"].fillna("").str.contains("descriptive: ", regex=False)
    if descriptive.any():
        words += (f"; its {int(descriptive.sum())} single-env (single-table) rows are "
                  "descriptive: no data could decide them at this many seeds")
    return words + "." + _planned_words(part)


def _planned_words(part: pd.DataFrame) -> str:
    """The seed planner's answer for the claim's undecided rows (``seed_plan.md``)."""
    plan = part.attrs.get("seed_plan")
    claim_id = part["claim_id"].iloc[0]
    undecided = part["verdict"].isin([INCONCLUSIVE, UNDERPOWERED, ONE_SEED]).any()
    if plan is None or plan.empty or not undecided:
        return ""
    mine = plan[plan["claim_id"] == claim_id]
    if mine.empty:
        return ""
    names = part.attrs.get("names", {})
    items = [f"{row.rows.replace('{candidate}', names.get(claim_id, 'the candidate'))} "
             f"({row.effect}): {seeds_words(row.seeds_needed, row.max_seeds)}"
             for row in mine.itertuples(index=False)]
    return (" Its undecided rows would need, for 80% power (seed planner, seed_plan.md): "
            + "; ".join(items) + " seeds per loss.")


def write_claims(table: pd.DataFrame, out: str | Path) -> list[Path]:
    out = Path(out)
    atomic.write_text(out.with_suffix(".md"), claims_markdown(table))
    atomic.write_csv(out.with_suffix(".csv"), table)
    return [out.with_suffix(".md"), out.with_suffix(".csv")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.analysis.claims",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", required=True, type=Path,
                        help="directory with the tidy tables (rl_*, classification_*)")
    parser.add_argument("--out", required=True, type=Path,
                        help="claims.md; the .csv goes beside it")
    parser.add_argument("--no-rl", action="store_true",
                        help="the grid has no RL part (its tables, if any, are stale)")
    parser.add_argument("--no-classification", action="store_true",
                        help="the grid has no classification part")
    parser.add_argument("--reps", type=int, default=stats.DEFAULT_REPS,
                        help="bootstrap resamples, and Monte Carlo relabellings of the "
                             "permutation tests beyond their exact limit")
    parser.add_argument("--bootstrap-seed", type=int, default=0)
    parser.add_argument("--rl-candidate", default="scope",
                        help="the policy loss claims A and B are about (rl.candidate)")
    parser.add_argument("--classification-candidate", default="scope",
                        help="the loss claim C is about (classification.candidate)")
    add_sweeps_argument(parser, "claim D")
    parser.add_argument("--noninferiority-margin", type=float, default=tuning_claim.MARGIN_SD,
                        help="claim D's margin in per-task pooled sd (claims."
                             "noninferiority_margin)")
    parser.add_argument("--seed-plan", type=Path, default=None,
                        help="the seed planner's CSV (scopeloss.analysis.power): the seeds "
                             "each claim's undecided rows would need")
    add_loss_styles_argument(parser)
    args = parser.parse_args(argv)
    use_loss_styles(args.loss_styles)
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    if not args.noninferiority_margin > 0:
        parser.error(f"--noninferiority-margin must be > 0, got {args.noninferiority_margin}")
    try:
        table = claims_table(args.tables, rl=not args.no_rl,
                             classification=not args.no_classification, reps=args.reps,
                             seed=args.bootstrap_seed, rl_candidate=args.rl_candidate,
                             classification_candidate=args.classification_candidate,
                             sweeps=args.sweeps, margin=args.noninferiority_margin,
                             seed_plan=(pd.read_csv(args.seed_plan) if args.seed_plan
                                        else None))
    except RunFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    written = write_claims(table, args.out)
    counts = table["verdict"].value_counts()
    print("claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "; wrote "
          + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
