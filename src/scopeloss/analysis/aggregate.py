"""Tidy tables from run directories.

``python -m scopeloss.analysis.aggregate rl --runs PATH... --out-dir results/tables``
writes rl_episodes, rl_updates, rl_eval, rl_final_runs (one row per run, with a ``status``)
and rl_final (per env x loss: mean, std and 95% bootstrap CI across seeds), each as .csv
and .parquet. ``... classification --runs PATH... --out-dir results/tables`` writes
classification_per_class and classification_summary. PATH is a run directory or its
summary.json; a run that has not finished is kept and reported, never dropped.

rl_episodes keeps each episode's ``truncated_by_resume`` flag (0 for runs written before
the trainer logged it); an episode cut by a kill and resume is not a whole episode, so
final returns (and the curves figure) leave it out and rl_final_runs counts it apart
(``episodes_truncated_by_resume``). rl_final_runs also carries each run's
``truncated_share`` from its summary (episodes that hit the env's time limit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from scopeloss import atomic

from . import loss_cost, stats
from .reference import (add_loss_styles_argument, cls_loss_name, cls_loss_sort_key,
                        env_sort_key, normalisation_range, rl_loss_name, rl_loss_sort_key,
                        use_loss_styles)
from .runs import (COMPLETE, EPISODE_COLUMNS, PER_CLASS_COLUMNS, RESUME_FLAG, UPDATE_COLUMNS,
                   FINAL_WINDOW, ClassificationRun, RLRun, RunFileError, best_return,
                   final_eval_return, final_return, load_classification_run, load_rl_run,
                   whole_episodes)

RL_TABLES = ("rl_episodes", "rl_updates", "rl_eval", "rl_final_runs", "rl_final")
CLASSIFICATION_TABLES = ("classification_per_class", "classification_summary")
_CLS_SUMMARY_KEYS = ("precision_mean", "precision_std", "recall_mean", "f1_mean", "top1",
                     "balanced_accuracy", "many_shot_acc", "medium_shot_acc", "few_shot_acc",
                     "never_predicted", "zero_division", "best_epoch",
                     "epochs_run", "wall_time_s",
                     # the last epoch's weights on test (the above: the best-validation's)
                     "final_epoch_precision_mean", "final_epoch_top1",
                     "final_epoch_balanced_accuracy", "final_epoch_few_shot_acc")


# ---------------------------------------------------------------------------- table I/O
def write_tables(out_dir: str | Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    out_dir = Path(out_dir)
    written = []
    for name, frame in tables.items():
        for suffix, writer in ((".csv", atomic.write_csv), (".parquet", atomic.write_parquet)):
            writer(out_dir / f"{name}{suffix}", frame)
            written.append(out_dir / f"{name}{suffix}")
    return written


def read_table(tables_dir: str | Path, name: str) -> pd.DataFrame:
    """A table written by this module: the Parquet file, else the CSV."""
    tables_dir = Path(tables_dir)
    for suffix, reader in ((".parquet", pd.read_parquet), (".csv", pd.read_csv)):
        path = tables_dir / f"{name}{suffix}"
        if path.exists():
            try:
                return reader(path)
            except Exception as err:  # pyarrow and pandas raise many types
                raise RunFileError(f"{path}: cannot be read ({err})") from None
    raise RunFileError(f"{tables_dir / name}.parquet (or .csv) not found; run "
                       f"`python -m scopeloss.analysis.aggregate` first")


def read_table_if_present(tables_dir: str | Path, name: str) -> pd.DataFrame | None:
    """``read_table``, or None when the table is absent (a part of the grid that did not
    run); an unreadable table is still an error."""
    try:
        return read_table(tables_dir, name)
    except RunFileError as err:
        if "not found" in str(err):
            return None
        raise


# ---------------------------------------------------------------------------- helpers
def _check_unique(runs: Sequence, key: Iterable[str]) -> None:
    seen: dict[tuple, Path] = {}
    for run in runs:
        ident = tuple(getattr(run, k) for k in key)
        if ident in seen:
            raise RunFileError(f"{run.run_dir}: the same run ({', '.join(map(str, ident))}) "
                               f"is also given as {seen[ident]}")
        seen[ident] = run.run_dir


def _with_identity(frame: pd.DataFrame, ident: dict) -> pd.DataFrame:
    frame = frame.copy()
    for pos, (col, value) in enumerate(ident.items()):
        frame.insert(pos, col, value)
    return frame


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    out = pd.concat(frames, ignore_index=True)
    return out[[c for c in columns if c in out.columns]
               + [c for c in out.columns if c not in columns]]


def sort_in_order(frame: pd.DataFrame, keys: dict) -> pd.DataFrame:
    """Sort by the paper's orders (keys: column -> sort-key function), then seed and step."""
    if frame.empty:
        return frame.reset_index(drop=True)
    cols = list(keys) + [c for c in ("seed", "global_step") if c in frame.columns]

    def rank(series: pd.Series) -> pd.Series:
        if series.name not in keys:
            return series
        order = sorted(series.unique(), key=keys[series.name])
        return series.map({v: i for i, v in enumerate(order)})

    return frame.sort_values(cols, key=rank, kind="stable").reset_index(drop=True)


def across_seeds(values: Sequence[float], prefix: str, *, reps: int, seed: int) -> dict:
    """Mean, std (ddof 1; nan for one seed) and 95% bootstrap CI of per-seed values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    low, high = stats.bootstrap_ci(x, reps=reps, seed=seed)
    return {f"{prefix}_mean": float(x.mean()) if x.size else np.nan,
            f"{prefix}_std": float(x.std(ddof=1)) if x.size > 1 else np.nan,
            f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


# ---------------------------------------------------------------------------- RL
def _share(value) -> float:
    """A summary's share in [0, 1] as a float; nan when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return np.nan
    return float(value)


def _device(summary: dict) -> str | None:
    return (summary.get("run_info") or {}).get("device_name")


def _update_time(summary: dict) -> float:
    """Seconds per PPO update (the update phase alone), from the trainer's timers."""
    update_s, updates = (summary.get("time_breakdown_s") or {}).get("update"), \
        summary.get("updates")
    return float(update_s) / updates if update_s is not None and updates else np.nan


def _rl_run_row(run: RLRun) -> dict:
    ret, used = final_return(run.episodes)
    best = best_return(run.episodes)
    rng = normalisation_range(run.env, run.distribution_mode)
    summary = run.summary or {}
    last_step = float(run.episodes["global_step"].max()) if len(run.episodes) else np.nan
    whole = len(whole_episodes(run.episodes))
    return {
        "env": run.env, "loss": run.loss, "loss_name": rl_loss_name(run.loss), "seed": run.seed,
        "status": run.status, "suite": run.suite, "distribution_mode": run.distribution_mode,
        "frameskip": run.frameskip, "episodes": whole,
        "episodes_truncated_by_resume": len(run.episodes) - whole,
        # share of the run's episodes that hit the env's time limit (summary key of the
        # trainer; nan for runs written before it was recorded, or unfinished)
        "truncated_share": _share(summary.get("truncated_share")),
        "last_episode_step": last_step, "last_episode_frames": last_step * run.frameskip,
        "total_steps": summary.get("total_steps", np.nan),
        "final_return": ret, "final_return_episodes": used,
        "final_eval_return": final_eval_return(run),
        "normalized_final_return": ((ret - rng[0]) / (rng[1] - rng[0])) if rng else np.nan,
        "best_return": best, "best_return_window": min(FINAL_WINDOW, whole),
        "normalized_best_return": ((best - rng[0]) / (rng[1] - rng[0])) if rng else np.nan,
        "wall_time_s": summary.get("wall_time_s", np.nan),
        "mean_sps": summary.get("mean_sps", np.nan),
        "update_time_s": _update_time(summary), "device_name": _device(summary),
        "run_dir": str(run.run_dir),
    }


def rl_final_table(runs_table: pd.DataFrame, *, reps: int = stats.DEFAULT_REPS,
                   seed: int = 0) -> pd.DataFrame:
    """Per env x loss: statistics across seeds of each run's final return (train levels),
    its held-out-level return, and its normalised score."""
    rows = []
    for (env, loss), group in runs_table.groupby(["env", "loss"], sort=False):
        have = group["final_return"].notna()
        row = {"env": env, "loss": loss, "loss_name": rl_loss_name(loss),
               "n_runs": len(group), "n_complete": int((group["status"] == COMPLETE).sum()),
               "n_seeds": int(have.sum()),
               "seeds": ",".join(str(s) for s in sorted(group.loc[have, "seed"])),
               "missing_seeds": ",".join(str(s) for s in sorted(group.loc[~have, "seed"]))}
        row.update(across_seeds(group["final_return"], "final_return", reps=reps, seed=seed))
        row.update(across_seeds(group["final_eval_return"], "final_eval_return", reps=reps,
                                seed=seed))
        row.update(across_seeds(group["normalized_final_return"], "normalized_final_return",
                                reps=reps, seed=seed))
        if "best_return" in group:  # the best window over training (biased up; not claimed)
            row.update(across_seeds(group["best_return"], "best_return", reps=reps,
                                    seed=seed))
        shares = (group["truncated_share"].dropna() if "truncated_share" in group
                  else pd.Series(dtype=float))
        row["truncated_share_max"] = float(shares.max()) if len(shares) else np.nan
        rows.append(row)
    table = pd.DataFrame(rows, columns=None if rows else ["env", "loss", "loss_name"])
    if rows:  # time per update over the baseline's, same env and device (loss_cost)
        ratio = loss_cost.relative_to_baseline(runs_table, "rl")
        by_cell = ratio.groupby(level=["env", "loss"]).median().to_dict()
        table[f"update_time_vs_{loss_cost.BASELINES['rl']}"] = [
            by_cell.get((e, l), np.nan) for e, l in zip(table["env"], table["loss"])]
    return sort_in_order(table, {"env": env_sort_key, "loss": rl_loss_sort_key})


def grid_normalised(runs: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """Each run's normalised final score: the paper's reference normalisation where the env
    has one (Atari human, StarPilot min-max), else min-max over this grid's runs of that
    env (0 = the lowest final return, 1 = the highest); and the envs normalised so."""
    score = runs["normalized_final_return"].astype(float).copy()
    by_grid = []
    for env, group in runs.groupby("env"):
        if group["normalized_final_return"].notna().all():
            continue
        lo, hi = group["final_return"].min(), group["final_return"].max()
        score[group.index] = (group["final_return"] - lo) / (hi - lo) if hi > lo else 0.5
        by_grid.append(env)
    return score, sorted(by_grid, key=env_sort_key)


def aggregate_rl(paths: Sequence[str | Path], *, reps: int = stats.DEFAULT_REPS,
                 seed: int = 0) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """All RL tables, and warnings about runs that are not complete."""
    runs = [load_rl_run(p) for p in paths]
    _check_unique(runs, ("env", "loss", "seed"))
    episodes, updates, evals, rows = [], [], [], []
    for run in runs:
        ident = {"env": run.env, "loss": run.loss, "seed": run.seed}
        ep = _with_identity(run.episodes[list(EPISODE_COLUMNS) + [RESUME_FLAG]], ident)
        ep.insert(3, "episode", np.arange(len(ep)))
        ep.insert(5, "frames", ep["global_step"] * run.frameskip)
        episodes.append(ep)
        up = _with_identity(run.updates, ident)
        up.insert(len(ident) + 2, "frames", up["global_step"] * run.frameskip)
        updates.append(up)
        ev = _with_identity(run.eval[list(EPISODE_COLUMNS)], ident)
        ev.insert(4, "frames", ev["global_step"] * run.frameskip)
        ev["split"] = "test"
        evals.append(ev)
        rows.append(_rl_run_row(run))
    order = {"env": env_sort_key, "loss": rl_loss_sort_key}
    ident_cols = ["env", "loss", "seed"]
    runs_table = sort_in_order(pd.DataFrame(rows), order) if rows else pd.DataFrame(
        columns=ident_cols)
    tables = {
        "rl_episodes": sort_in_order(_concat(
            episodes, ident_cols + ["episode", "global_step", "frames", *EPISODE_COLUMNS[1:],
                                    RESUME_FLAG]),
            order),
        "rl_updates": sort_in_order(_concat(
            updates, ident_cols + ["update", "global_step", "frames", *UPDATE_COLUMNS[2:]]),
            order),
        "rl_eval": sort_in_order(_concat(
            evals, ident_cols + ["global_step", "frames", *EPISODE_COLUMNS[1:], "split"]),
            order),
        "rl_final_runs": runs_table,
        "rl_final": rl_final_table(runs_table, reps=reps, seed=seed),
    }
    warnings = [f"{r['run_dir']}: {r['status']} (no summary.json"
                + (f"; {r['episodes']} episodes logged so far)" if r["episodes"]
                   else "; no episode logged yet)")
                for _, r in runs_table.iterrows() if r["status"] != COMPLETE]
    warnings += [f"{r['run_dir']}: finished but logged no episode; its final return is missing"
                 for _, r in runs_table.iterrows()
                 if r["status"] == COMPLETE and r["episodes"] == 0]
    return tables, warnings


# ---------------------------------------------------------------------------- classification
def _training_speed(run: ClassificationRun) -> float:
    """Seconds per training image: the inverse of the median over epochs of the run's
    ``images_per_s`` (history.csv; nan without it)."""
    path = run.run_dir / "history.csv"
    if run.status != COMPLETE or not path.is_file():
        return np.nan
    rates = pd.read_csv(path).get("images_per_s")
    rate = float(rates.median()) if rates is not None and rates.notna().any() else np.nan
    return 1.0 / rate if rate > 0 else np.nan


def _cls_summary_row(run: ClassificationRun) -> dict:
    summary = run.summary or {}
    row = {"dataset": run.dataset, "experiment": run.experiment, "loss": run.loss,
           "loss_name": cls_loss_name(run.loss), "seed": run.seed, "status": run.status,
           "n_classes": len(run.per_class)}
    for key in _CLS_SUMMARY_KEYS:
        value = summary.get(key)
        row[key] = np.nan if value is None else value
    row["zero_division"] = None if row["zero_division"] is np.nan else str(row["zero_division"])
    row["seconds_per_image"], row["device_name"] = _training_speed(run), _device(summary)
    shots = summary.get("shot_thresholds")  # (few below, many above), as text in a table
    row["shot_thresholds"] = None if shots is None else f"{shots[0]:g} / {shots[1]:g}"
    row["run_dir"] = str(run.run_dir)
    return row


def aggregate_classification(paths: Sequence[str | Path]
                             ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    runs = [load_classification_run(p) for p in paths]
    _check_unique(runs, ("dataset", "experiment", "loss", "seed"))
    per_class, rows = [], []
    for run in runs:
        ident = {"dataset": run.dataset, "experiment": run.experiment, "loss": run.loss,
                 "seed": run.seed}
        per_class.append(_with_identity(run.per_class[list(PER_CLASS_COLUMNS)], ident))
        rows.append(_cls_summary_row(run))
    order = {"dataset": str, "experiment": str, "loss": cls_loss_sort_key}
    per_class_table = _concat(per_class, ["dataset", "experiment", "loss", "seed",
                                          *PER_CLASS_COLUMNS])
    per_class_table = sort_in_order(per_class_table, order)
    summary = sort_in_order(pd.DataFrame(rows), order) if rows else pd.DataFrame(
        columns=["dataset", "experiment", "loss", "seed"])
    warnings = [f"{r['run_dir']}: {r['status']} (no summary.json yet)"
                for _, r in summary.iterrows() if r["status"] != COMPLETE]
    return {"classification_per_class": per_class_table,
            "classification_summary": summary}, warnings


# ---------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.analysis.aggregate",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("rl", "classification"):
        p = sub.add_parser(kind, help=f"aggregate {kind} runs")
        p.add_argument("--runs", nargs="+", required=True, metavar="PATH",
                       help="run directories or their summary.json files")
        p.add_argument("--out-dir", required=True, type=Path)
        if kind == "rl":
            p.add_argument("--reps", type=int, default=stats.DEFAULT_REPS,
                           help="bootstrap resamples for the CIs across seeds")
            p.add_argument("--bootstrap-seed", type=int, default=0)
        add_loss_styles_argument(p)
    args = parser.parse_args(argv)
    use_loss_styles(args.loss_styles)
    try:
        if args.kind == "rl":
            if args.reps < 1:
                parser.error(f"--reps must be >= 1, got {args.reps}")
            tables, warnings = aggregate_rl(args.runs, reps=args.reps, seed=args.bootstrap_seed)
        else:
            tables, warnings = aggregate_classification(args.runs)
    except RunFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    _warn(warnings)
    written = write_tables(args.out_dir, tables)
    n_runs = len(args.runs)
    print(f"aggregated {n_runs} {args.kind} run(s) ({len(warnings)} not complete); wrote "
          + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
