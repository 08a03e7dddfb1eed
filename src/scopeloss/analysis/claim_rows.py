"""What every claim's rows share: the row itself, its permutation test, the Holm step within
a claim and the verdict (``decide``), and the opening every RL claim makes (which runs,
which other losses, which envs, their budgets: ``opening``). The claims themselves are
``rl_claims`` (A, B), ``precision_claims`` (C) and ``tuning_claim`` (D); ``claims`` makes
the table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import significance, stats, tuning_claim
from .reference import env_sort_key, rl_loss_sort_key, span_words, steps_words

AGGREGATE = "IQM"
SUPPORTED, CONTRADICTED, INCONCLUSIVE = (significance.SUPPORTED, significance.CONTRADICTED,
                                         significance.INCONCLUSIVE)
ONE_SEED, UNDERPOWERED, NOT_RUN = (significance.ONE_SEED, significance.UNDERPOWERED,
                                   significance.NOT_RUN)

CLAIMS = {
    "A": "{candidate} beats each other policy loss (final return)",
    "B": "{candidate} keeps more exploration (final-phase entropy higher, "
         "max-action probability lower)",
    "C": "{candidate} has the highest mean per-class precision (Tables 1 and 2), and the "
         "highest few-shot accuracy",
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


def run_test(x_by_task, y_by_task, statistic=significance.mean_difference, *, reps: int,
          seed: int) -> dict:
    _, p = significance.permutation_test(x_by_task, y_by_task, statistic, reps=reps, seed=seed)
    return {"p": p, "min_p": significance.min_p_value(x_by_task, y_by_task)}


def iqm_difference(xs, ys):
    iqm = stats.AGGREGATES[AGGREGATE]
    return iqm(np.concatenate(xs, axis=-1)) - iqm(np.concatenate(ys, axis=-1))


def improvement(xs, ys):
    return np.mean([stats.pairwise_improvement(x, y) for x, y in zip(xs, ys)], axis=0)


def row(claim_id, comparison, where, metric, *, claimed, estimate, low, high, n_seeds,
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


def not_run(claim_id: str, reason: str) -> dict:
    return {"claim_id": claim_id, "claim": CLAIMS[claim_id], "comparison": "–",
            "where": "–", "metric": "–", "claimed": "–", "estimate": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "n_seeds": 0, "p": np.nan, "p_adj": np.nan,
            "budget": "–", "verdict": NOT_RUN, "note": reason}


def by_env(frame: pd.DataFrame, loss: str, column: str) -> dict[str, np.ndarray]:
    sub = frame[frame["loss"] == loss].dropna(subset=[column])
    return {env: g[column].to_numpy(dtype=float) for env, g in sub.groupby("env")}


def min_seeds(x_by_task: dict, y_by_task: dict) -> int:
    shared = set(x_by_task) & set(y_by_task)
    return min((min(x_by_task[t].size, y_by_task[t].size) for t in shared), default=0)


def others(losses, reference: str, key=rl_loss_sort_key) -> list[str]:
    return sorted((l for l in set(losses) if l != reference), key=key)


def opening(claim_id: str, frame: pd.DataFrame, runs: pd.DataFrame, candidate: str,
            no_data: str | None = None) -> tuple[list[str], list[str], dict[str, str]] | dict:
    """What an RL claim starts from: (the other losses, the envs, each env's budget in
    words) of ``frame`` (one row per finished run, ``runs`` their table), or the claim's
    not-run row saying why there is nothing to compare."""
    if no_data is not None:
        return not_run(claim_id, no_data)
    if candidate not in set(frame["loss"]):
        return not_run(claim_id, "no finished {candidate} run in this grid")
    rivals = others(frame["loss"], candidate)
    if not rivals:
        return not_run(claim_id, "no other policy loss in this grid")
    envs = sorted(frame["env"].unique(), key=env_sort_key)
    budget = {env: span_words(runs.loc[runs["env"] == env, "total_steps"], steps_words, "steps")
              for env in envs}
    return rivals, envs, budget


def aggregate_where(shared: list[str]) -> str:
    return f"aggregate ({len(shared)} env{'s' if len(shared) > 1 else ''})"


