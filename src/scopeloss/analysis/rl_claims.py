"""Claims A and B, about the RL half: does the candidate policy loss beat each other loss
(final return per env; in aggregate the IQM of normalised scores and the probability of
improvement), and does it keep more exploration (final-phase entropy and max-action
probability)? Their rows are decided with the others' in ``claim_rows.decide``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .aggregate import grid_normalised
from .claim_rows import (AGGREGATE, aggregate_where, by_env, improvement, iqm_difference,
                         min_seeds, opening, row, run_test)
from .reference import env_sort_key, rl_loss_name, span_words, steps_words
from .runs import COMPLETE

FINAL_PHASE = 0.25   # exploration is measured over the last quarter of each run's updates


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


def _steps(runs: pd.DataFrame, envs: list[str]) -> str:
    return span_words(runs.loc[runs["env"].isin(envs), "total_steps"], steps_words, "steps")


def return_claims(runs: pd.DataFrame, *, reps: int, seed: int, candidate: str = "scope",
                  ci_reps: int | None = None) -> list[dict]:
    """Claim A's rows. ``reps``: Monte Carlo relabellings beyond the exact limit, and the
    bootstrap resamples of the CIs unless ``ci_reps`` says otherwise (the seed planner,
    which needs no CI, passes 1)."""
    ci_reps = ci_reps or reps
    complete = set(runs.loc[runs["status"] == COMPLETE, "env"])
    finished = finished_rl_runs(runs).copy()
    start = opening("A", finished, finished, candidate)
    if isinstance(start, dict):
        return [start]
    others, envs, budget = start
    # complete runs whose episodes never ended have no final return: named, not dropped
    no_episode = sorted(complete - set(finished["env"]), key=env_sort_key)
    finished["score"], by_grid = grid_normalised(finished)
    ref_ret, ref_score = by_env(finished, candidate, "final_return"), by_env(
        finished, candidate, "score")
    rows = []
    for other in others:
        comparison = f"{{candidate}} vs {rl_loss_name(other)}"
        x_ret, x_score = by_env(finished, other, "final_return"), by_env(finished, other, "score")
        for env in (e for e in envs if e in ref_ret and e in x_ret):
            est, low, high = stats.bootstrap_difference_ci(ref_ret[env], x_ret[env],
                                                           reps=ci_reps, seed=seed)
            rows.append(row(
                "A", comparison, env, "final return, {candidate} - X (mean of the last 100 "
                "episodes)", claimed="> 0", estimate=est, low=low, high=high,
                n_seeds=min(ref_ret[env].size, x_ret[env].size), budget=budget[env],
                test=run_test({env: ref_ret[env]}, {env: x_ret[env]}, reps=reps, seed=seed)))
        shared = sorted(set(ref_ret) & set(x_ret), key=env_sort_key)
        if shared:
            rows += _aggregate_return_rows(
                comparison, shared, (ref_ret, x_ret), (ref_score, x_score),
                note=_normalisation_note(shared, by_grid, no_episode),
                n=min_seeds(ref_ret, x_ret), budget=_steps(finished, shared), reps=reps,
                ci_reps=ci_reps, seed=seed)
    return rows


def _normalisation_note(shared: list[str], by_grid, no_episode: list[str]) -> str:
    grid_envs = [e for e in shared if e in by_grid]
    ref_envs = [e for e in shared if e not in by_grid]
    return "; ".join(
        ([f"fixed references (Atari random-human, StarPilot Procgen min-max, "
          f"MinAtar random-AC(lambda)): {', '.join(ref_envs)}"] if ref_envs else [])
        + ([f"min-max over this grid's runs (no reference scores): "
            f"{', '.join(grid_envs)}"] if grid_envs else [])
        + ([f"left out, no finished episode in any run: {', '.join(no_episode)}"]
           if no_episode else []))


def _aggregate_return_rows(comparison: str, shared: list[str], returns: tuple[dict, dict],
                           scores: tuple[dict, dict], *, note: str,
                           n: int, budget: str, reps: int, ci_reps: int, seed: int
                           ) -> list[dict]:
    """Claim A's two aggregate rows: the IQM difference of normalised scores, and P(the
    candidate's run beats the other's)."""
    where = aggregate_where(shared)
    est, low, high, _ = stats.stratified_bootstrap_difference(
        scores[0], scores[1], AGGREGATE, reps=ci_reps, seed=seed)
    iqm_row = row("A", comparison, where,
                  f"{AGGREGATE} of normalised final score, " "{candidate} - X",
                  claimed="> 0", estimate=est, low=low, high=high, n_seeds=n, budget=budget,
                  test=run_test(*scores, iqm_difference, reps=reps, seed=seed), note=note)
    est, low, high, _ = stats.probability_of_improvement(*returns, reps=ci_reps, seed=seed)
    poi_row = row("A", comparison, where, "P({candidate} run's final return > X run's)",
                  claimed="> 0.5", estimate=est, low=low, high=high, n_seeds=n, budget=budget,
                  test=run_test(*returns, improvement, reps=reps, seed=seed), null=0.5)
    return [iqm_row, poi_row]


EXPLORATION = (  # column, per-env metric, claimed, direction, aggregate metric
    ("entropy", "final-phase policy entropy, {candidate} - X", "> 0", 1,
     "P({candidate} run's final-phase entropy > X run's)"),
    ("max_prob", "final-phase mean max-action probability, {candidate} - X", "< 0", -1,
     "P({candidate} run's final-phase max-action probability < X run's)"))


def exploration_claims(runs: pd.DataFrame, updates: pd.DataFrame, *, reps: int,
                       seed: int, candidate: str = "scope") -> list[dict]:
    """Claim B's rows: per env each exploration measure's difference, in aggregate the
    probability of improvement."""
    runs = runs[runs["status"] == COMPLETE]
    done = set(runs[["env", "loss", "seed"]].itertuples(index=False, name=None))
    phase = final_phase(updates)
    phase = phase[[k in done for k in phase[["env", "loss", "seed"]].itertuples(
        index=False, name=None)]]
    silent = phase[["entropy", "max_prob"]].isna().all().all()
    start = opening("B", phase, runs, candidate,
                    "no finished RL run logged entropy / max_prob" if silent else None)
    if isinstance(start, dict):
        return [start]
    others, envs, budget = start
    phase = phase.assign(neg_max_prob=-phase["max_prob"])
    note = f"mean over the last {FINAL_PHASE:.0%} of each run's updates"
    rows = []
    for other in others:
        comparison = f"{{candidate}} vs {rl_loss_name(other)}"
        for column, metric, claimed, direction, poi_metric in EXPLORATION:
            ref, x = by_env(phase, candidate, column), by_env(phase, other, column)
            for env in (e for e in envs if e in ref and e in x):
                est, low, high = stats.bootstrap_difference_ci(ref[env], x[env], reps=reps,
                                                               seed=seed)
                rows.append(row(
                    "B", comparison, env, metric, claimed=claimed, estimate=est, low=low,
                    high=high, n_seeds=min(ref[env].size, x[env].size), budget=budget[env],
                    test=run_test({env: ref[env]}, {env: x[env]}, reps=reps, seed=seed),
                    direction=direction, note=note))
            shared = sorted(set(ref) & set(x), key=env_sort_key)
            if not shared:
                continue
            signed = "neg_max_prob" if column == "max_prob" else column
            ref_s, x_s = by_env(phase, candidate, signed), by_env(phase, other, signed)
            est, low, high, _ = stats.probability_of_improvement(ref_s, x_s, reps=reps,
                                                                 seed=seed)
            rows.append(row(
                "B", comparison, aggregate_where(shared), poi_metric, claimed="> 0.5",
                estimate=est, low=low, high=high, n_seeds=min_seeds(ref, x),
                budget=_steps(runs, shared),
                test=run_test(ref_s, x_s, improvement, reps=reps, seed=seed), null=0.5,
                note=note))
    return rows
