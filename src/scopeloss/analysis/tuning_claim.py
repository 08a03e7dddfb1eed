"""Claim D, "a loss needs no tuning", as a non-inferiority test.

A sweep varies one parameter of one loss; its *default* is the value the loss's own cell
runs with. The claim is that the default is not meaningfully worse than any other value of
the sweep: for every other value v, on the per-task standardised scale,

    H0_v: mean over tasks of (mu_default - mu_v) / sd_task <= -margin
    H1_v: ... > -margin                              (the default is within the margin of v)

with ``margin`` declared before the data (``claims.noninferiority_margin``, default 0.5) in
units of each task's pooled within-cell standard deviation (all finished cells of that env,
or dataset / experiment, pooled). Each H0_v is tested by an exact one-sided permutation test
across seeds (runs relabelled within each task) after shifting the default's runs up by
``margin * sd_task``: at the boundary of H0 the shifted default and v have one mean.
Every other value is compared (no post-hoc pick of "the best"), and the claim for a sweep is
the intersection of its H1_v, so:

* **supported**: after Holm over all of claim D's non-inferiority tests, every H0_v of the
  sweep is rejected (the default is shown within the margin of every value);
* **contradicted**: a two-sided permutation test (no shift; Holm over claim D's tests of
  this kind) finds the default significantly worse than some value;
* **underpowered**: some H0_v could not be rejected by any data at this design (its exact
  floor 1 / relabellings above the most lenient Holm step it could reach): the row says
  how many seeds per value would make it reachable;
* **inconclusive** otherwise (undecided: neither shown within the margin nor worse).

Absence of evidence is never support: a default 1 sd worse than one value is called
supported in at most 5 % of simulated grids (docs/statistics.md, measured by
benchmarks/claims_error_rates.py).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from . import significance, stats
from .reference import (cls_loss_name, env_sort_key, normalisation_range, rl_loss_name,
                        span_words, steps_words)
from .runs import COMPLETE
from .significance import (CONTRADICTED, INCONCLUSIVE, NOT_RUN, ONE_SEED, SUPPORTED,
                           UNDERPOWERED)

MARGIN_SD = 0.5
CLAIM = ("a loss needs no tuning: its default parameter is within {margin:g} sd of every "
         "other value of its sweep (non-inferiority)")


# ---------------------------------------------------------------------------- sweeps
def sweep_groups(members: Sequence[dict]) -> list[tuple[str, str, list[dict]]]:
    """(swept loss, parameter, its members sorted by value), in the sweeps' order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for m in members:
        groups.setdefault((m["swept"], m["param"]), []).append(m)
    return [(s, p, sorted(ms, key=lambda m: m["value"])) for (s, p), ms in groups.items()]


def sweep_variants(members: Sequence[dict]) -> set[str]:
    """The cells a sweep added (every member but the swept loss's own cell): they belong to
    claim D and the sensitivity figures, not to the comparisons of claims A-C."""
    return {m["name"] for m in members if not m["default"]}


def default_words(default: dict, param: str) -> str:
    """The default's value, and the registered one where an overlay changed it."""
    registered = default.get("registered", default["value"])
    if registered is None or np.isclose(registered, default["value"]):
        return f"{param}={default['value']:g} (default)"
    return f"{param}={default['value']:g} (the grid's default; registered {registered:g})"


# ---------------------------------------------------------------------------- one comparison
def _standardised(by_task: dict[str, np.ndarray], sd: dict[str, float]) -> dict:
    return {t: np.asarray(v, float) / sd[t] for t, v in by_task.items() if t in sd}


def _bootstrap_ci(xs: list[np.ndarray], ys: list[np.ndarray], reps: int, seed: int):
    """Percentile 95 % CI of the mean over tasks of mean(X) - mean(Y), runs resampled within
    each task and loss (a description only)."""
    rng = np.random.default_rng(seed)
    diff = np.zeros(reps)
    for x, y in zip(xs, ys):
        diff += (x[rng.integers(0, x.size, (reps, x.size))].mean(1)
                 - y[rng.integers(0, y.size, (reps, y.size))].mean(1))
    diff /= len(xs)
    return float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))


def compare(default: dict, other: dict, *, margin: float, reps: int, seed: int,
            ci_reps: int) -> dict:
    """One value against the default, both ``{task: runs}`` already in sd units: the
    estimate, its CI, the one-sided non-inferiority p (shifted by the margin) and the
    two-sided p of "the default differs", with each test's exact floor."""
    xs, ys = stats.paired_tasks(default, other)
    tasks = sorted(set(default) & set(other))
    shifted = {t: np.asarray(default[t], float) + margin for t in tasks}
    _, p_ni = significance.permutation_test(shifted, other, reps=reps, seed=seed,
                                            alternative="greater")
    estimate, p_worse = significance.permutation_test(default, other, reps=reps, seed=seed)
    low, high = _bootstrap_ci(xs, ys, ci_reps, seed) if xs else (np.nan, np.nan)
    return {"estimate": estimate, "ci_low": low, "ci_high": high, "p_ni": p_ni,
            "p_worse": p_worse, "tasks": len(xs),
            "n_seeds": min((min(x.size, y.size) for x, y in zip(xs, ys)), default=0),
            "floor_ni": significance.min_p_value(default, other, sides=1),
            "floor_worse": significance.min_p_value(default, other, sides=2)}


def comparison_words(swept_label: str, param: str, default: dict, others: list[dict]) -> str:
    return (f"{swept_label}: {default_words(default, param)} vs "
            + ", ".join(f"{m['value']:g}" for m in others) + f" (all {len(others) + 1} values)")


def sweep_row(swept_label: str, param: str, members: list[dict], by_member: dict,
              sd: dict[str, float], *, where: str, unit_words: str, budget: str,
              margin: float, reps: int, seed: int, ci_reps: int) -> dict:
    """Claim D's row for one sweep at one place: every other value compared with the
    default (``by_member[name]``: ``{task: raw values}``; ``sd``: each task's pooled sd)."""
    default = next(m for m in members if m["default"])
    others = [m for m in members if not m["default"] and by_member.get(m["name"])]
    base = _standardised(by_member[default["name"]], sd)
    components = []
    for i, m in enumerate(others):
        c = compare(base, _standardised(by_member[m["name"]], sd), margin=margin,
                    reps=reps, seed=seed + i, ci_reps=ci_reps)
        components.append({**c, "value": m["value"]})
    worst = min(components, key=lambda c: c["estimate"])
    means = {m["name"]: np.mean([np.mean(v) for v in by_member[m["name"]].values()])
             for m in [default, *others]}
    values = ", ".join(
        f"{param}={m['value']:g}{' (default)' if m['default'] else ''}: {means[m['name']]:.3g}"
        for m in sorted([default, *others], key=lambda m: m["value"]))
    return {"claim_id": "D", "claim": CLAIM.format(margin=margin),
            "comparison": comparison_words(swept_label, param, default, others),
            "where": where,
            "metric": "default - value, in per-task sd (mean over tasks); worst value shown",
            "claimed": f"> -{margin:g} sd for every value",
            "estimate": worst["estimate"], "ci_low": worst["ci_low"],
            "ci_high": worst["ci_high"], "n_seeds": min(c["n_seeds"] for c in components),
            "budget": budget, "components": components, "margin": margin,
            "note": f"margin {margin:g} sd = {unit_words}; mean by value: {values}"}


def decide(rows: list[dict], alpha: float = significance.ALPHA) -> None:
    """Claim D's verdicts, in place: Holm over every non-inferiority test of the claim, and
    separately over every two-sided test of "the default is worse"; a row is supported when
    all its values are rejected as inferior, contradicted when one value is significantly
    better than the default."""
    tested = [r for r in rows if r.get("components")]
    comps = [c for r in tested for c in r["components"]]
    if not comps:
        return
    ni_adj = significance.holm([c["p_ni"] for c in comps])
    worse_adj = significance.holm([c["p_worse"] for c in comps])
    floors = [c["floor_ni"] for c in comps]
    for i, c in enumerate(comps):
        c["p_ni_adj"], c["p_worse_adj"] = float(ni_adj[i]), float(worse_adj[i])
        c["reachable"] = significance.reachable_threshold(floors, i, alpha)
    for row in tested:
        cs = row["components"]
        row["p"] = max(c["p_ni"] for c in cs)  # the intersection's p: the largest
        row["p_adj"] = max(c["p_ni_adj"] for c in cs)
        row["min_p"] = max(c["floor_ni"] for c in cs)
        row["reachable_alpha"] = min(c["reachable"] for c in cs)
        row["test"] = "noninferiority"
        detail = "; ".join(
            f"{c['value']:g}: {c['estimate']:+.2f} sd [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}],"
            f" p(within margin) {c['p_ni']:.3g} (adj {c['p_ni_adj']:.3g}),"
            f" p(differs) {c['p_worse']:.3g} (adj {c['p_worse_adj']:.3g})" for c in cs)
        row["note"] = f"{row['note']}; by value: {detail}"
        if row["n_seeds"] < 2:
            row["verdict"] = ONE_SEED
        elif any(c["p_worse_adj"] <= alpha and c["estimate"] < 0 for c in cs):
            row["verdict"] = CONTRADICTED
        elif all(c["p_ni_adj"] <= alpha for c in cs):
            row["verdict"] = SUPPORTED
        elif any(c["floor_ni"] > c["reachable"] for c in cs):
            row["verdict"] = UNDERPOWERED
            need = max(significance.seeds_to_reach(c["reachable"], tasks=c["tasks"], sides=1)
                       for c in cs)
            row["note"] += (f"; no data could show non-inferiority at this design: it needs "
                            f"{need} seeds per value")
        else:
            row["verdict"] = INCONCLUSIVE


# ---------------------------------------------------------------------------- the halves
def _not_run(where: str, reason: str, margin: float, comparison: str = "–") -> dict:
    return {"claim_id": "D", "claim": CLAIM.format(margin=margin), "comparison": comparison,
            "where": where, "metric": "–", "claimed": "–", "estimate": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "n_seeds": 0, "p": np.nan, "p_adj": np.nan,
            "budget": "–", "verdict": NOT_RUN, "note": reason}


def rl_task_sd(runs: pd.DataFrame) -> dict[str, float]:
    """Each env's pooled within-cell sd of the final return (all finished cells)."""
    out = {}
    for env, g in runs.groupby("env"):
        sd = stats.pooled_sd([x["final_return"].to_numpy(float) for _, x in g.groupby("loss")])
        if np.isfinite(sd) and sd > 0:
            out[env] = sd
    return out


def _score_unit(env: str, returns: pd.Series) -> float:
    """One normalised score in the env's returns: its fixed reference range, else the range
    of this grid's final returns (as ``aggregate.grid_normalised``)."""
    ref = normalisation_range(env)
    return (ref[1] - ref[0]) if ref else float(returns.max() - returns.min()) or 1.0


def rl_rows(runs: pd.DataFrame, members: Sequence[dict], *, margin: float, reps: int,
            seed: int, ci_reps: int | None = None) -> list[dict]:
    """Claim D for each RL sweep over the envs the default and a value share (``runs``:
    rl_final_runs, finished runs only)."""
    runs = runs[(runs["status"] == COMPLETE) & runs["final_return"].notna()]
    sd = rl_task_sd(runs)
    rows = []
    for swept, param, ms in sweep_groups(members):
        by_member = {m["name"]: {env: g["final_return"].to_numpy(float)
                                 for env, g in runs[runs["loss"] == m["name"]].groupby("env")
                                 if env in sd} for m in ms}
        default = next(m for m in ms if m["default"])
        if not by_member[default["name"]] or not any(
                by_member[m["name"]] for m in ms if not m["default"]):
            finished = set(runs.loc[runs["loss"].isin([m["name"] for m in ms]), "env"])
            reason = (f"no finished runs of {rl_loss_name(swept)} at its default and another "
                      f"{param}" if not finished - set(sd) else
                      f"no spread across seeds to scale by in {', '.join(sorted(finished - set(sd)))}"
                      " (one seed per cell: the claim needs at least 2)")
            rows.append(_not_run("–", reason, margin, comparison_words(
                rl_loss_name(swept), param, default, [m for m in ms if not m["default"]])))
            continue
        envs = sorted(by_member[default["name"]], key=env_sort_key)
        unit = np.mean([margin * sd[e] / _score_unit(e, runs.loc[runs["env"] == e,
                                                                 "final_return"])
                        for e in envs])
        rows.append(sweep_row(
            rl_loss_name(swept), param, ms, by_member, sd,
            where=f"aggregate ({len(envs)} env{'s' if len(envs) > 1 else ''})",
            unit_words=f"{unit:.3g} normalised score (mean over envs)",
            budget=span_words(runs.loc[runs["env"].isin(envs), "total_steps"], steps_words,
                              "steps"),
            margin=margin, reps=reps, seed=seed, ci_reps=ci_reps or reps))
    return rows


def classification_rows(per_run: pd.DataFrame, done: pd.DataFrame, members: Sequence[dict], *,
                        margin: float, reps: int, seed: int, ci_reps: int | None = None
                        ) -> list[dict]:
    """Claim D for each classification sweep, per dataset and experiment, on the mean
    per-class test precision (``per_run``: one row per finished run)."""
    rows = []
    combos = per_run[["dataset", "experiment"]].drop_duplicates()
    for swept, param, ms in sweep_groups(members):
        for dataset, exp in combos.itertuples(index=False, name=None):
            sub = per_run[(per_run["dataset"] == dataset) & (per_run["experiment"] == exp)]
            where = f"{dataset} / {exp}"
            sd_value = stats.pooled_sd([g["precision_mean"].to_numpy(float)
                                        for _, g in sub.groupby("loss")])
            by_member = {m["name"]: {where: sub.loc[sub["loss"] == m["name"],
                                                    "precision_mean"].to_numpy(float)}
                         for m in ms}
            by_member = {k: v for k, v in by_member.items() if v[where].size}
            default = next(m for m in ms if m["default"])
            if (default["name"] not in by_member or len(by_member) < 2
                    or not (np.isfinite(sd_value) and sd_value > 0)):
                rows.append(_not_run(where, f"no finished runs of {cls_loss_name(swept)} at "
                                            f"its default and another {param} with a spread "
                                            "across seeds", margin, comparison_words(
                                                cls_loss_name(swept), param, default,
                                                [m for m in ms if not m["default"]])))
                continue
            epochs = done.loc[(done["dataset"] == dataset) & (done["experiment"] == exp),
                              "epochs_run"]
            rows.append(sweep_row(
                cls_loss_name(swept), param, ms, by_member, {where: sd_value}, where=where,
                unit_words=f"{margin * sd_value:.3g} mean per-class precision",
                budget=span_words(epochs, lambda v: f"{v:g}", "epochs"), margin=margin,
                reps=reps, seed=seed, ci_reps=ci_reps or reps))
    return rows
