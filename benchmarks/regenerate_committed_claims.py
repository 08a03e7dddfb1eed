"""Re-decide the claims of the committed reference results with today's code, from the run
tables committed beside them: ``python benchmarks/regenerate_committed_claims.py``.

Each folder under docs/results/ keeps the per-run tables of the grid that ran
(``rl_final_runs.csv``, ``classification_summary.csv``), not the per-update logs or the
per-class files; the claims that need only those are re-decided here (A: final returns; C
and D: the runs' mean per-class precision, one pseudo-class per run holding its mean, which
is all claims C and D read). Claim B (exploration) needs the runs' ``rl_updates`` and is
left as 'not run', said so: re-running the preset decides it. The sweeps are those of the
preset that made the folder (``scopeloss.grid.sweeps_json``); a folder with sweeps gets
its sensitivity figures redrawn too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from scopeloss import grid  # noqa: E402
from scopeloss.analysis import claims, figures, power  # noqa: E402

FOLDERS = {  # folder: the preset that made it
    "docs/results/minatar": "presets/minatar_reference.yaml",
    "docs/results/sensitivity": "presets/sensitivity.yaml",
    "docs/results/numbers_lt": "presets/numbers_reference.yaml",
}
NO_UPDATES = ("not recomputed: the run tables committed here have no per-update log "
              "(rl_updates); rerun the preset to decide it")


def regenerate(folder: Path, preset: str, plan_grids: int = 0) -> Path:
    config = grid.load_config(str(ROOT / "config.yaml"), str(ROOT / preset))
    sweeps = json.loads(grid.sweeps_json(config))
    margin = grid.claims_settings(config)["noninferiority_margin"]
    with tempfile.TemporaryDirectory() as tmp:
        tables = Path(tmp)
        runs = folder / "rl_final_runs.csv"
        if runs.exists():
            pd.read_csv(runs).to_csv(tables / "rl_final_runs.csv", index=False)
        summary = folder / "classification_summary.csv"
        if summary.exists():
            frame = pd.read_csv(summary)
            frame.to_csv(tables / "classification_summary.csv", index=False)
            keys = ["dataset", "experiment", "loss", "seed"]
            frame[keys].assign(**{"class": 0, "precision": frame["precision_mean"]}).to_csv(
                tables / "classification_per_class.csv", index=False)
        table = claims.claims_table(tables, rl=runs.exists(),
                                    classification=summary.exists(),
                                    rl_candidate=grid.candidate(config, "rl"),
                                    classification_candidate=grid.candidate(
                                        config, "classification"),
                                    sweeps=sweeps, margin=margin)
        for half, table_name in (("rl", "rl_final_runs"),
                                 ("classification", "classification_summary")):
            if sweeps.get(half) and (tables / f"{table_name}.csv").exists():
                figures.plot_sensitivity(tables, folder / f"{half}_sensitivity.png",
                                         sweeps[half], half=half, margin=margin)
        if plan_grids and (folder / "seed_plan.md").exists():
            power.main(["--tables", str(tables), "--out", str(folder / "seed_plan"),
                        "--grids", str(plan_grids), "--sweeps", json.dumps(sweeps),
                        "--noninferiority-margin", str(margin),
                        "--rl-candidate", grid.candidate(config, "rl"),
                        "--classification-candidate",
                        grid.candidate(config, "classification")])
    b = table["claim_id"] == "B"
    table.loc[b & (table["verdict"] == claims.NOT_RUN), "note"] = NO_UPDATES
    written = claims.write_claims(table, folder / "claims.md")
    return written[0]


def replace_runs(folder: Path, tables: Path) -> list[str]:
    """Put the RL runs of ``tables`` (a rerun's results/tables) in place of the committed
    runs of the same losses in ``folder``; rl_final.csv and the aggregate figure and table
    follow from the runs table (the curves and exploration figures need the per-episode and
    per-update logs, which are not committed: they are left as they were)."""
    from scopeloss.analysis import aggregate
    from scopeloss.analysis.aggregate_figure import plot_aggregate
    from scopeloss.analysis.reference import env_sort_key, rl_loss_sort_key

    new = pd.read_csv(tables / "rl_final_runs.csv")
    old = pd.read_csv(folder / "rl_final_runs.csv")
    missing = set(old.columns) - set(new.columns)
    if missing:
        raise SystemExit(f"{tables}: rl_final_runs lacks {sorted(missing)}")
    losses = sorted(set(new["loss"]))
    runs = pd.concat([old[~old["loss"].isin(losses)], new[old.columns]], ignore_index=True)
    runs = aggregate.sort_in_order(runs, {"env": env_sort_key, "loss": rl_loss_sort_key,
                                          "seed": int})
    runs.to_csv(folder / "rl_final_runs.csv", index=False)
    aggregate.rl_final_table(runs).to_csv(folder / "rl_final.csv", index=False)
    with tempfile.TemporaryDirectory() as tmp:
        runs.to_csv(Path(tmp) / "rl_final_runs.csv", index=False)
        plot_aggregate(tmp, folder / "rl_aggregate.png", stats_out=folder / "rl_aggregate.csv",
                       profile_out=folder / "rl_performance_profile.png")
    return losses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed-plan-grids", type=int, default=0,
                        help="also re-plan a folder's seed_plan.md with this many simulated "
                             "grids per seed count (0: leave it)")
    parser.add_argument("--replace-runs", nargs=2, metavar=("FOLDER", "TABLES"),
                        help="first put the RL runs of a rerun's TABLES (results/tables) in "
                             "place of FOLDER's runs of the same losses")
    args = parser.parse_args(argv)
    if args.replace_runs:
        folder, tables = (Path(p) for p in args.replace_runs)
        print(f"{folder}: replaced the runs of {', '.join(replace_runs(folder, tables))}")
    for folder, preset in FOLDERS.items():
        path = regenerate(ROOT / folder, preset, args.seed_plan_grids)
        counts = pd.read_csv(path.with_suffix(".csv"))
        summary = counts.groupby("claim_id")["verdict"].value_counts().to_dict()
        print(f"{path}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
