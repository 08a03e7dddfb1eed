"""What each loss costs per training step, from the runs' own timings.

A loss's time per step over its half's baseline loss's: RL, seconds per PPO update (the
update phase only: rollouts do not depend on the loss) over ``policy``'s; classification,
seconds per training image over ``ce``'s. Each ratio is taken within one task (an env, or a
dataset and experiment) on one device, from the median of the runs there (robust to one
run slowed by a shared machine); a loss's cost is the median of its ratios over tasks. A
task without a baseline run on the same device gives no ratio. ``python -m
scopeloss.registry check`` times one call of the loss in isolation; this is the whole
step as the runs ran it, network and optimiser included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .reference import cls_loss_name, cls_loss_sort_key, rl_loss_name, rl_loss_sort_key
from .runs import COMPLETE

BASELINES = {"rl": "policy", "classification": "ce"}
STEP_TIME = {"rl": "update_time_s", "classification": "seconds_per_image"}
TASK = {"rl": ["env"], "classification": ["dataset", "experiment"]}
COLUMNS = ["loss", "relative_cost", "n_runs", "n_tasks", "device_name"]


def timed_runs(runs: pd.DataFrame, half: str) -> pd.DataFrame:
    """The finished runs that have a step time and a device."""
    time = STEP_TIME[half]
    if time not in runs or "device_name" not in runs:
        return runs.iloc[:0].assign(**{time: [], "device_name": []})
    return runs[(runs["status"] == COMPLETE) & runs[time].notna()]


def step_medians(runs: pd.DataFrame, half: str) -> pd.Series:
    """The median step time of each task, device and loss (finished runs with a time)."""
    keys = [*TASK[half], "device_name", "loss"]
    return timed_runs(runs, half).groupby(keys)[STEP_TIME[half]].median()


def relative_to_baseline(runs: pd.DataFrame, half: str) -> pd.Series:
    """Per task, device and loss: its median step time over the baseline's there."""
    medians = step_medians(runs, half)
    if medians.empty:
        return medians
    base = medians.xs(BASELINES[half], level="loss")
    ratio = medians / medians.index.droplevel("loss").map(base.to_dict().get).astype(float)
    return ratio.dropna()


def relative_costs(runs: pd.DataFrame | None, half: str) -> pd.DataFrame:
    """One row per loss: the median over tasks of its step time relative to the baseline's,
    the runs and tasks it rests on, and the device(s)."""
    if runs is None:
        return pd.DataFrame(columns=COLUMNS)
    ratios = relative_to_baseline(runs, half)
    keys = [*TASK[half], "device_name"]
    timed = timed_runs(runs, half)
    rows = []
    for loss, group in ratios.groupby(level="loss", sort=False):
        where = group.index.droplevel("loss")  # the (task, device) pairs of its ratios
        used = timed[timed["loss"] == loss].set_index(keys).index.isin(where)
        rows.append({"loss": loss, "relative_cost": float(np.median(group.to_numpy())),
                     "n_runs": int(used.sum()), "n_tasks": len(group),
                     "device_name": "; ".join(sorted(set(
                         group.index.get_level_values("device_name"))))})
    order = rl_loss_sort_key if half == "rl" else cls_loss_sort_key
    rows.sort(key=lambda row: order(row["loss"]))
    return pd.DataFrame(rows, columns=COLUMNS)


def cost_line(costs: pd.DataFrame, half: str, names) -> str:
    """claims.md's line for one half: each loss's cost beside the baseline's."""
    if costs.empty:
        return (f"{half}: no finished run has a step time beside a "
                f"{names(BASELINES[half])} run on the same task and device.")
    parts = [f"{names(r.loss)} {r.relative_cost:.2f}x" for r in costs.itertuples()
             if r.loss != BASELINES[half]]
    devices = "; ".join(sorted(set(costs["device_name"])))
    unit = "update" if half == "rl" else "training image"
    return (f"{half}, time per {unit} over {names(BASELINES[half])}'s (median over "
            f"{int(costs['n_tasks'].max())} task(s), {devices}): "
            + (", ".join(parts) or "only the baseline ran") + ".")


def cost_lines(rl_runs: pd.DataFrame | None, cls_summary: pd.DataFrame | None
               ) -> dict[str, str]:
    """claims.md's closing lines: each half that has runs, its losses' costs."""
    halves = (("rl", rl_runs, rl_loss_name), ("classification", cls_summary, cls_loss_name))
    return {half: cost_line(relative_costs(frame, half), half, name)
            for half, frame, name in halves if frame is not None and not frame.empty}

