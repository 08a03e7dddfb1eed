"""The seed plan's reading: per claim and kind of row, the seeds per loss that decide it.
Written by the planner (``power``), quoted by the claims table (``claims``): a module of its
own so that neither imports the other."""

from __future__ import annotations

import numpy as np
import pandas as pd


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim and kind of row (single env / table, or each aggregate metric): the seeds
    per loss that give every such row the target power (NaN: not within the counts tried)."""
    kind = np.where(table["claim_id"] == "D", "every sweep (non-inferiority)",
                    np.where(table["where"].str.startswith("aggregate"), table["metric"],
                             np.where(table["claim_id"] == "C", "per dataset / experiment",
                                      "per env")))
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
