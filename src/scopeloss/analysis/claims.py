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
   experiment: the difference of mean per-class precision (Scope - X) across seeds.

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

import numpy as np
import pandas as pd

from scopeloss import atomic

from . import significance, stats, tuning_claim
from .aggregate import grid_normalised, read_table_if_present, sort_in_order
from .reference import (
    add_loss_styles_argument,
    span_words,
    steps_words,
    add_sweeps_argument,
    cls_loss_name,
    cls_loss_sort_key,
    env_sort_key,
    rl_loss_name,
    rl_loss_sort_key,
    use_loss_styles,
)
from .runs import COMPLETE, RunFileError
from .seed_plan import seeds_words
from .seed_plan import summary as plan_summary

FINAL_PHASE = 0.25   # exploration is measured over the last quarter of each run's updates
AGGREGATE = "IQM"
PAPER_CLS_LOSSES = ("pel", "scope", "focal", "ce")
TABLE_OF = {"plain": "Table 1", "augmented": "Table 2"}

SUPPORTED, CONTRADICTED, INCONCLUSIVE = (significance.SUPPORTED, significance.CONTRADICTED,
                                         significance.INCONCLUSIVE)
ONE_SEED, UNDERPOWERED, NOT_RUN = (significance.ONE_SEED, significance.UNDERPOWERED,
                                   significance.NOT_RUN)

CLAIMS = {
    "A": "{candidate} beats each other policy loss (final return)",
    "B": "{candidate} keeps more exploration (final-phase entropy higher, "
         "max-action probability lower)",
    "C": "{candidate} has the highest mean per-class precision (Tables 1 and 2)",
    "D": tuning_claim.CLAIM.format(margin=tuning_claim.MARGIN_SD),
}
COLUMNS = ["claim_id", "claim", "comparison", "where", "metric", "claimed", "estimate",
           "ci_low", "ci_high", "n_seeds", "p", "p_adj", "reachable_alpha", "budget",
           "verdict", "note"]
# What a row of claims A-C claims: that the candidate is better (supported only when the
# test says so). Claim D's rows are non-inferiority tests (``tuning_claim``).
BETTER = "better"
DESCRIPTIVE = ("descriptive: no row of one {unit} can be decided with {n} seeds per loss "
               "in this family (it would need {need})")


def verdict(estimate: float, p_adj: float, min_p: float, *, n_seeds: int, null: float = 0.0,
            direction: int = 1, alpha: float = significance.ALPHA,
            threshold: float | None = None) -> str:
    """From the Holm-adjusted permutation p: *underpowered* when this design's smallest
    possible p is above ``threshold`` (the most lenient Holm step the row could face,
    ``significance.reachable_threshold``; default ``alpha``): no data could decide it.
    Else supported / contradicted when p_adj <= alpha (by the side of ``null`` the estimate
    is on; ``direction`` +1 claims above, -1 below), inconclusive otherwise. Fewer than two
    seeds: no test. Never supported without a significant test."""
    if n_seeds < 2:
        return ONE_SEED
    if min_p > (alpha if threshold is None else threshold):
        return UNDERPOWERED
    decided = not np.isnan(p_adj) and p_adj <= alpha
    side = (estimate - null) * direction
    if not decided:
        return INCONCLUSIVE
    return SUPPORTED if side > 0 else CONTRADICTED


def _test(x_by_task, y_by_task, statistic=significance.mean_difference, *, reps: int,
          seed: int) -> dict:
    _, p = significance.permutation_test(x_by_task, y_by_task, statistic, reps=reps, seed=seed)
    return {"p": p, "min_p": significance.min_p_value(x_by_task, y_by_task)}


def _iqm_difference(xs, ys):
    iqm = stats.AGGREGATES[AGGREGATE]
    return iqm(np.concatenate(xs, axis=-1)) - iqm(np.concatenate(ys, axis=-1))


def _improvement(xs, ys):
    return np.mean([stats.pairwise_improvement(x, y) for x, y in zip(xs, ys)], axis=0)


def _row(claim_id, comparison, where, metric, *, claimed, estimate, low, high, n_seeds,
         budget, test: dict, null=0.0, direction=1, note="") -> dict:
    n_seeds = int(n_seeds)
    if n_seeds < 2:
        low = high = np.nan
    return {"claim_id": claim_id, "claim": CLAIMS[claim_id], "comparison": comparison,
            "where": where, "metric": metric, "claimed": claimed, "estimate": estimate,
            "ci_low": low, "ci_high": high, "n_seeds": n_seeds,
            "p": test["p"] if n_seeds >= 2 else np.nan, "min_p": test["min_p"],
            "budget": budget, "null": null, "direction": direction, "note": note}


def is_aggregate(row: dict) -> bool:
    return str(row["where"]).startswith("aggregate")


def decide(rows: list[dict]) -> list[dict]:
    """Holm within each claim over its tested rows, then each row's verdict, judged against
    the most lenient Holm step the row could reach given the other rows' smallest p. Claim
    D's rows are decided by ``tuning_claim.decide`` (non-inferiority)."""
    tuning_claim.decide([r for r in rows if r["claim_id"] == "D"])
    for claim_id in ("A", "B", "C"):
        part = [r for r in rows if r["claim_id"] == claim_id and "min_p" in r]
        p_values = [r["p"] for r in part]
        floors = [np.nan if np.isnan(p) else r["min_p"] for r, p in zip(part, p_values)]
        for i, (row, p_adj) in enumerate(zip(part, significance.holm(p_values))):
            row["p_adj"] = p_adj
            row["reachable_alpha"] = (np.nan if np.isnan(floors[i])
                                      else significance.reachable_threshold(floors, i))
            row["verdict"] = verdict(row["estimate"], p_adj, row["min_p"],
                                     n_seeds=row["n_seeds"], null=row["null"],
                                     direction=row["direction"],
                                     threshold=row["reachable_alpha"])
        _mark_descriptive(part)
    return rows


def _mark_descriptive(part: list[dict]) -> None:
    """Single-env (single-table) rows that no data could decide at this design are
    descriptive: said in their note, with the seeds per loss that would make one decidable
    (the exact test's floor 2 / C(2n, n) below the family's strictest Holm step)."""
    single = [r for r in part if not is_aggregate(r) and r["n_seeds"] >= 2]
    if not single or any(r["verdict"] != UNDERPOWERED for r in single):
        return
    unit = "env" if part[0]["claim_id"] in ("A", "B") else "dataset and experiment"
    need = significance.seeds_to_reach(max(r["reachable_alpha"] for r in single))
    text = DESCRIPTIVE.format(unit=unit, n=max(r["n_seeds"] for r in single),
                              need=f"{need} seeds per loss")
    for row in single:
        row["note"] = f"{row['note']}; {text}" if row["note"] else text


def _not_run(claim_id: str, reason: str) -> dict:
    return {"claim_id": claim_id, "claim": CLAIMS[claim_id], "comparison": "–",
            "where": "–", "metric": "–", "claimed": "–", "estimate": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "n_seeds": 0, "p": np.nan, "p_adj": np.nan,
            "budget": "–", "verdict": NOT_RUN, "note": reason}


def _by_env(frame: pd.DataFrame, loss: str, column: str) -> dict[str, np.ndarray]:
    sub = frame[frame["loss"] == loss].dropna(subset=[column])
    return {env: g[column].to_numpy(dtype=float) for env, g in sub.groupby("env")}


def _min_seeds(x_by_task: dict, y_by_task: dict) -> int:
    shared = set(x_by_task) & set(y_by_task)
    return min((min(x_by_task[t].size, y_by_task[t].size) for t in shared), default=0)


# ---------------------------------------------------------------------------- RL
def finished_rl_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[(runs["status"] == COMPLETE) & runs["final_return"].notna()]


def final_phase(updates: pd.DataFrame, fraction: float = FINAL_PHASE) -> pd.DataFrame:
    """Per run: mean entropy and max_prob over its last ``fraction`` of updates (>= 1)."""
    rows = []
    cols = [c for c in ("entropy", "max_prob") if c in updates.columns]
    for (env, loss, seed), run in updates.groupby(["env", "loss", "seed"], sort=False):
        run = run.sort_values("global_step", kind="stable")
        tail = run.iloc[-max(1, int(np.ceil(fraction * len(run)))):]
        rows.append({"env": env, "loss": loss, "seed": seed,
                     **{c: float(tail[c].mean()) for c in cols}})
    return pd.DataFrame(rows, columns=["env", "loss", "seed", "entropy", "max_prob"])


def _others(losses, reference: str, key=rl_loss_sort_key) -> list[str]:
    return sorted((l for l in set(losses) if l != reference), key=key)


def return_claims(runs: pd.DataFrame, *, reps: int, seed: int, candidate: str = "scope",
                  ci_reps: int | None = None) -> list[dict]:
    """Claim A's rows. ``reps``: Monte Carlo relabellings beyond the exact limit, and the
    bootstrap resamples of the CIs unless ``ci_reps`` says otherwise (the seed planner,
    which needs no CI, passes 1)."""
    ci_reps = ci_reps or reps
    complete = set(runs.loc[runs["status"] == COMPLETE, "env"])
    runs = finished_rl_runs(runs).copy()
    # complete runs whose episodes never ended have no final return: named, not dropped silently
    no_episode = sorted(complete - set(runs["env"]), key=env_sort_key)
    if candidate not in set(runs["loss"]):
        return [_not_run("A", "no finished {candidate} run in this grid")]
    others = _others(runs["loss"], candidate)
    if not others:
        return [_not_run("A", "no other policy loss in this grid")]
    envs = sorted(runs["env"].unique(), key=env_sort_key)
    budget = {env: span_words(runs.loc[runs["env"] == env, "total_steps"], steps_words, "steps")
              for env in envs}
    runs["score"], by_grid = grid_normalised(runs)
    rows = []
    ref_ret, ref_score = _by_env(runs, candidate, "final_return"), _by_env(runs, candidate,
                                                                           "score")
    for other in others:
        comparison = f"{{candidate}} vs {rl_loss_name(other)}"
        x_ret, x_score = _by_env(runs, other, "final_return"), _by_env(runs, other, "score")
        for env in envs:
            if env not in ref_ret or env not in x_ret:
                continue
            est, low, high = stats.bootstrap_difference_ci(ref_ret[env], x_ret[env],
                                                           reps=ci_reps, seed=seed)
            test = _test({env: ref_ret[env]}, {env: x_ret[env]}, reps=reps, seed=seed)
            rows.append(
                _row(
                    "A",
                    comparison,
                    env,
                    "final return, {candidate} - X " "(mean of the last 100 episodes)",
                    claimed="> 0",
                    estimate=est,
                    low=low,
                    high=high,
                    n_seeds=min(ref_ret[env].size, x_ret[env].size),
                    budget=budget[env],
                    test=test,
                )
            )
        shared = sorted(set(ref_ret) & set(x_ret), key=env_sort_key)
        if not shared:
            continue
        where = f"aggregate ({len(shared)} env{'s' if len(shared) > 1 else ''})"
        agg_budget = span_words(runs.loc[runs["env"].isin(shared), "total_steps"],
                                steps_words, "steps")
        n = _min_seeds(ref_ret, x_ret)
        grid_envs = [e for e in shared if e in by_grid]
        ref_envs = [e for e in shared if e not in by_grid]
        norm_note = "; ".join(
            ([f"fixed references (Atari random-human, StarPilot Procgen min-max, "
              f"MinAtar random-AC(lambda)): {', '.join(ref_envs)}"] if ref_envs else [])
            + ([f"min-max over this grid's runs (no reference scores): "
                f"{', '.join(grid_envs)}"] if grid_envs else [])
            + ([f"left out, no finished episode in any run: {', '.join(no_episode)}"]
               if no_episode else []))
        est, low, high, _ = stats.stratified_bootstrap_difference(
            ref_score, x_score, AGGREGATE, reps=ci_reps, seed=seed)
        test = _test(ref_score, x_score, _iqm_difference, reps=reps, seed=seed)
        rows.append(
            _row(
                "A",
                comparison,
                where,
                f"{AGGREGATE} of normalised final score, " "{candidate} - X",
                claimed="> 0",
                estimate=est,
                low=low,
                high=high,
                n_seeds=n,
                budget=agg_budget,
                test=test,
                note=norm_note,
            )
        )
        est, low, high, _ = stats.probability_of_improvement(ref_ret, x_ret, reps=ci_reps,
                                                             seed=seed)
        test = _test(ref_ret, x_ret, _improvement, reps=reps, seed=seed)
        rows.append(
            _row(
                "A",
                comparison,
                where,
                "P({candidate} run's final return > X run's)",
                claimed="> 0.5",
                estimate=est,
                low=low,
                high=high,
                n_seeds=n,
                budget=agg_budget,
                test=test,
                null=0.5,
            )
        )
    return rows


def exploration_claims(runs: pd.DataFrame, updates: pd.DataFrame, *, reps: int,
                       seed: int, candidate: str = "scope") -> list[dict]:
    runs = runs[runs["status"] == COMPLETE]
    done = set(runs[["env", "loss", "seed"]].itertuples(index=False, name=None))
    phase = final_phase(updates)
    phase = phase[[k in done for k in phase[["env", "loss", "seed"]].itertuples(
        index=False, name=None)]]
    if phase[["entropy", "max_prob"]].isna().all().all():
        return [_not_run("B", "no finished RL run logged entropy / max_prob")]
    if candidate not in set(phase["loss"]):
        return [_not_run("B", "no finished {candidate} run in this grid")]
    others = _others(phase["loss"], candidate)
    if not others:
        return [_not_run("B", "no other policy loss in this grid")]
    envs = sorted(phase["env"].unique(), key=env_sort_key)
    budget = {env: span_words(runs.loc[runs["env"] == env, "total_steps"], steps_words, "steps")
              for env in envs}
    phase = phase.assign(neg_max_prob=-phase["max_prob"])
    note = f"mean over the last {FINAL_PHASE:.0%} of each run's updates"
    metrics = (("entropy", "final-phase policy entropy, {candidate} - X", "> 0", 1,
                "P({candidate} run's final-phase entropy > X run's)"),
               ("max_prob", "final-phase mean max-action probability, {candidate} - X", "< 0", -1,
                "P({candidate} run's final-phase max-action probability < X run's)"))
    rows = []
    for other in others:
        comparison = f"{{candidate}} vs {rl_loss_name(other)}"
        for column, metric, claimed, direction, poi_metric in metrics:
            ref, x = _by_env(phase, candidate, column), _by_env(phase, other, column)
            for env in envs:
                if env not in ref or env not in x:
                    continue
                est, low, high = stats.bootstrap_difference_ci(ref[env], x[env], reps=reps,
                                                               seed=seed)
                test = _test({env: ref[env]}, {env: x[env]}, reps=reps, seed=seed)
                rows.append(
                    _row(
                        "B",
                        comparison,
                        env,
                        metric,
                        claimed=claimed,
                        estimate=est,
                        low=low,
                        high=high,
                        n_seeds=min(ref[env].size, x[env].size),
                        budget=budget[env],
                        test=test,
                        direction=direction,
                        note=note,
                    )
                )
            shared = sorted(set(ref) & set(x), key=env_sort_key)
            if not shared:
                continue
            signed = "neg_max_prob" if column == "max_prob" else column
            ref_s, x_s = _by_env(phase, candidate, signed), _by_env(phase, other, signed)
            est, low, high, _ = stats.probability_of_improvement(ref_s, x_s, reps=reps,
                                                                 seed=seed)
            test = _test(ref_s, x_s, _improvement, reps=reps, seed=seed)
            rows.append(
                _row(
                    "B",
                    comparison,
                    f"aggregate ({len(shared)} env" f"{'s' if len(shared) > 1 else ''})",
                    poi_metric,
                    claimed="> 0.5",
                    estimate=est,
                    low=low,
                    high=high,
                    n_seeds=_min_seeds(ref, x),
                    budget=span_words(
                        runs.loc[runs["env"].isin(shared), "total_steps"], steps_words, "steps"
                    ),
                    test=test,
                    null=0.5,
                    note=note,
                )
            )
    return rows


# ---------------------------------------------------------------------------- classification
def finished_classification_runs(per_class: pd.DataFrame, summary: pd.DataFrame
                                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the finished runs' summaries, their mean per-class precision: one row per run)."""
    done = summary[summary["status"] == COMPLETE]
    keys = ["dataset", "experiment", "loss", "seed"]
    done_keys = set(done[keys].itertuples(index=False, name=None))
    per_class = per_class[[k in done_keys for k in per_class[keys].itertuples(
        index=False, name=None)]]
    runs = (per_class.groupby(keys, sort=False)["precision"].mean()
            .rename("precision_mean").reset_index())
    return done, runs


def precision_claims(per_class: pd.DataFrame, summary: pd.DataFrame, *, reps: int,
                     seed: int, candidate: str = "scope", ci_reps: int | None = None
                     ) -> list[dict]:
    """Claim C's rows (``ci_reps`` as in ``return_claims``)."""
    ci_reps = ci_reps or reps
    done, runs = finished_classification_runs(per_class, summary)
    if runs.empty:
        return [_not_run("C", "no finished classification run in this grid")]
    rows = []
    combos = sort_in_order(runs[["dataset", "experiment"]].drop_duplicates(),
                           {"dataset": str, "experiment": lambda e: (TABLE_OF.get(e, "~"), e)})
    for dataset, exp in combos.itertuples(index=False, name=None):
        sub = runs[(runs["dataset"] == dataset) & (runs["experiment"] == exp)]
        where = f"{dataset} / {exp}" + (f" ({TABLE_OF[exp]})" if exp in TABLE_OF else "")
        epochs = done.loc[(done["dataset"] == dataset) & (done["experiment"] == exp),
                          "epochs_run"]
        budget = span_words(epochs, lambda v: f"{v:g}", "epochs")
        if candidate not in set(sub["loss"]):
            rows.append({**_not_run("C", "no finished {candidate} run"), "where": where})
            continue
        others = _others(sub["loss"], candidate, key=cls_loss_sort_key)
        if not others:
            rows.append({**_not_run("C", "no other loss"), "where": where})
            continue
        ref = sub.loc[sub["loss"] == candidate, "precision_mean"].to_numpy()
        for other in others:
            x = sub.loc[sub["loss"] == other, "precision_mean"].to_numpy()
            est, low, high = stats.bootstrap_difference_ci(ref, x, reps=ci_reps, seed=seed)
            test = _test({where: ref}, {where: x}, reps=reps, seed=seed)
            note = "" if other in PAPER_CLS_LOSSES else "baseline not in the paper's tables"
            rows.append(
                _row(
                    "C",
                    f"{{candidate}} vs {cls_loss_name(other)}",
                    where,
                    "mean per-class test precision, {candidate} - X",
                    claimed="> 0",
                    estimate=est,
                    low=low,
                    high=high,
                    n_seeds=min(ref.size, x.size),
                    budget=budget,
                    test=test,
                    note=note,
                )
            )
    return rows


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
        rows += [_not_run("A", reason), _not_run("B", reason)]
    else:
        if rl_members:
            swept += tuning_claim.rl_rows(runs, rl_members, margin=margin, reps=reps,
                                          seed=seed)
        runs = runs[~runs["loss"].isin(tuning_claim.sweep_variants(rl_members))]
        rows += return_claims(runs, reps=reps, seed=seed, candidate=rl_candidate)
        updates = read_table_if_present(tables, "rl_updates")
        rows += (exploration_claims(runs, updates, reps=reps, seed=seed,
                                    candidate=rl_candidate)
                 if updates is not None else [_not_run("B", "no rl_updates table")])
    per_class = (
        read_table_if_present(tables, "classification_per_class") if classification else None
    )
    summary = read_table_if_present(tables, "classification_summary") if classification else None
    if per_class is None or summary is None or summary.empty:
        rows.append(_not_run("C", "no classification runs in this grid" if classification
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
    rows += swept or [_not_run("D", "no sweep in this grid (rl.sweeps, "
                                    "classification.sweeps)")]
    names = {"A": rl_loss_name(rl_candidate), "B": rl_loss_name(rl_candidate),
             "C": cls_loss_name(classification_candidate), "D": ""}
    for row in rows:  # the texts name the candidate by its label
        for key in ("claim", "comparison", "metric", "note"):
            row[key] = row[key].replace("{candidate}", names[row["claim_id"]])
    table = pd.DataFrame(decide(rows), columns=COLUMNS)
    table.loc[table["claim_id"] == "D", "claim"] = tuning_claim.CLAIM.format(margin=margin)
    table.attrs["candidates"] = {"rl": names["A"], "classification": names["C"]}
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
