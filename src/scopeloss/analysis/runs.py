"""Reading run directories (the 'Output files' of docs/CONTRACT.md), strictly.

A run is identified by its ``summary.json``; a run that has not finished has none, so its
identity falls back to its path (``results/rl/{env}/{loss}/seed{seed}`` or
``results/classification/{dataset}/{experiment}/{loss}/seed{seed}``) and it is kept with a
``status`` saying what is missing. A file that is there but malformed (bad JSON, a CSV
that does not parse, missing columns, non-numeric values) raises ``RunFileError`` naming
the file and what is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .reference import ATARI_FRAMESKIP, ATARI_RANDOM_HUMAN, PROCGEN_MIN_MAX

EPISODE_COLUMNS = ("global_step", "return", "length")
# 0/1 column of episodes.csv: 1 for an episode cut short by a kill and resume (its return
# is partial). Runs written before the column existed lack it: read as 0.
RESUME_FLAG = "truncated_by_resume"
UPDATE_COLUMNS = ("update", "global_step", "policy_loss", "value_loss", "entropy", "approx_kl",
                  "clipfrac", "max_prob", "action_top_share", "update_action_top_share", "lr",
                  "sps")
REQUIRED_UPDATE_COLUMNS = ("update", "global_step")
PER_CLASS_COLUMNS = ("class", "name", "train_count", "support", "precision", "recall", "f1")
PER_CLASS_NUMERIC = ("class", "train_count", "support", "precision", "recall", "f1")
FINAL_WINDOW = 100  # episodes: the final performance of a run is the mean of its last 100

# Run status, one of these in every table that has a row per run.
COMPLETE = "complete"        # summary.json written: the run finished
INCOMPLETE = "incomplete"    # no summary.json yet, but some results logged
MISSING = "missing"          # nothing logged yet

_SEED_DIR = re.compile(r"^seed(-?\d+)$")


class RunFileError(ValueError):
    """A run file that is present but unusable; the message names the file."""


@dataclass
class RLRun:
    run_dir: Path
    env: str
    loss: str
    seed: int
    status: str
    suite: str
    frameskip: int
    distribution_mode: str | None
    summary: dict | None
    episodes: pd.DataFrame
    updates: pd.DataFrame
    eval: pd.DataFrame


@dataclass
class ClassificationRun:
    run_dir: Path
    dataset: str
    experiment: str
    loss: str
    seed: int
    status: str
    summary: dict | None
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)


def run_dir_of(path: str | Path) -> Path:
    """A run directory, given it or its summary.json (which may not exist yet)."""
    path = Path(path)
    if path.name == "summary.json" or path.is_file():
        return path.parent
    return path


def _identity_from_path(run_dir: Path, names: tuple[str, ...]) -> dict:
    """Parse ``.../{names...}/seed{N}`` from the end of the path."""
    parts = run_dir.parts
    match = _SEED_DIR.match(parts[-1]) if parts else None
    if not match or len(parts) < len(names) + 1:
        layout = "/".join("{" + n + "}" for n in names) + "/seed{seed}"
        raise RunFileError(f"{run_dir}: no summary.json and the path does not end in "
                           f"{layout}, so the run cannot be identified")
    ident: dict[str, str | int] = dict(zip(names, parts[-len(names) - 1:-1]))
    ident["seed"] = int(match.group(1))
    return ident


def read_summary(path: Path, required: tuple[str, ...]) -> dict | None:
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFileError(f"{path}: malformed JSON ({err})") from None
    if not isinstance(summary, dict):
        raise RunFileError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    missing = [k for k in required if k not in summary]
    if missing:
        raise RunFileError(f"{path}: missing key(s) {', '.join(missing)}; "
                           f"required: {', '.join(required)}")
    seed = summary["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or int(seed) != seed:
        raise RunFileError(f"{path}: 'seed' must be an integer, got {seed!r}")
    summary["seed"] = int(seed)
    for key in required:
        if key != "seed" and not isinstance(summary[key], str):
            raise RunFileError(f"{path}: {key!r} must be a string, got {summary[key]!r}")
    return summary


def read_csv(path: Path, required: tuple[str, ...], numeric: tuple[str, ...] | None = None,
             *, optional: bool = True) -> pd.DataFrame | None:
    """Read a run CSV; None if absent (and optional); an empty frame with the required
    columns if the file is empty (a run that created it but logged nothing yet)."""
    if not path.exists():
        if optional:
            return None
        raise RunFileError(f"{path}: file not found")
    if path.stat().st_size == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in required})
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RunFileError(f"{path}: malformed CSV ({str(err).strip()})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise RunFileError(f"{path}: missing column(s) {', '.join(missing)}; found "
                           f"{', '.join(map(str, frame.columns)) or 'none'}; "
                           f"required: {', '.join(required)}")
    checked = [c for c in (required if numeric is None else numeric) if c in frame.columns]
    if frame.empty:  # header only: nothing logged yet
        return frame.astype({c: float for c in checked})
    for col in checked:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            bad = frame[col][pd.to_numeric(frame[col], errors="coerce").isna()
                             & frame[col].notna()]
            raise RunFileError(f"{path}: column {col!r} must be numeric; line "
                               f"{int(bad.index[0]) + 2} has {bad.iloc[0]!r}")
        if col in required and frame[col].isna().any():
            line = int(frame.index[frame[col].isna()][0]) + 2
            raise RunFileError(f"{path}: column {col!r} is empty on line {line}")
    return frame


def _suite_of(env: str, summary: dict | None) -> tuple[str, int, str | None]:
    """(suite, frameskip, distribution_mode): from the run's env spec when it has one."""
    spec = {}
    if summary:
        spec = dict((summary.get("hparams") or {}).get("env") or {})
        spec.update(summary.get("env_spec") or {})
    suite = spec.get("suite")
    if suite is None:  # unfinished run: infer from the env name
        suite = ("atari" if env in ATARI_RANDOM_HUMAN else
                 "procgen" if env in PROCGEN_MIN_MAX else "gym")
    frameskip = int(spec.get("frameskip", ATARI_FRAMESKIP)) if suite == "atari" else 1
    mode = spec.get("distribution_mode", "hard") if suite == "procgen" else None
    return suite, frameskip, mode


def load_rl_run(path: str | Path) -> RLRun:
    run_dir = run_dir_of(path)
    summary = read_summary(run_dir / "summary.json", ("env", "loss", "seed"))
    ident = (summary if summary is not None
             else _identity_from_path(run_dir, ("env", "loss")))
    env, loss, seed = ident["env"], ident["loss"], ident["seed"]
    # A finished run must have logged its episodes file (possibly with no rows).
    episodes = read_csv(run_dir / "episodes.csv", EPISODE_COLUMNS,
                        EPISODE_COLUMNS + (RESUME_FLAG,), optional=summary is None)
    if episodes is not None:
        episodes = _with_resume_flag(episodes, run_dir / "episodes.csv")
    updates = read_csv(run_dir / "updates.csv", REQUIRED_UPDATE_COLUMNS, UPDATE_COLUMNS)
    evals = read_csv(run_dir / "eval.csv", EPISODE_COLUMNS)
    status = _status(summary, episodes)
    suite, frameskip, mode = _suite_of(env, summary)
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in EPISODE_COLUMNS})
    return RLRun(run_dir=run_dir, env=env, loss=loss, seed=seed, status=status, suite=suite,
                 frameskip=frameskip, distribution_mode=mode, summary=summary,
                 episodes=episodes if episodes is not None else _with_resume_flag(
                     empty.copy(), None),
                 updates=updates if updates is not None else pd.DataFrame(
                     {c: pd.Series(dtype=float) for c in UPDATE_COLUMNS}),
                 eval=evals if evals is not None else empty.copy())


def _with_resume_flag(episodes: pd.DataFrame, path: Path | None) -> pd.DataFrame:
    """The episodes with a 0/1 ``truncated_by_resume`` column (0 where the file has none)."""
    if RESUME_FLAG not in episodes.columns:
        episodes = episodes.copy()
        episodes[RESUME_FLAG] = np.zeros(len(episodes), dtype=np.int64)
        return episodes
    flag = episodes[RESUME_FLAG]
    bad = ~flag.isin([0, 1])
    if bad.any():
        line = int(episodes.index[bad][0]) + 2
        raise RunFileError(f"{path}: column {RESUME_FLAG!r} must be 0 or 1; line {line} has "
                           f"{flag[bad].iloc[0]!r}")
    episodes = episodes.copy()
    episodes[RESUME_FLAG] = flag.astype(np.int64)
    return episodes


def whole_episodes(episodes: pd.DataFrame) -> pd.DataFrame:
    """The episodes that ran to their end (those cut by a kill and resume left out)."""
    if RESUME_FLAG not in episodes.columns:
        return episodes
    return episodes[episodes[RESUME_FLAG] == 0]


def _status(summary: dict | None, rows: pd.DataFrame | None) -> str:
    """Complete once the trainer wrote its summary; incomplete while it has logged rows but
    no summary (still training, or killed); missing with neither."""
    if summary is not None:
        return COMPLETE
    return INCOMPLETE if rows is not None and len(rows) else MISSING


def returns_in_order(episodes: pd.DataFrame) -> np.ndarray:
    """The returns of the whole episodes (not cut by a resume), in the order they finished
    (a stable sort on global_step)."""
    whole = whole_episodes(episodes)
    return whole.sort_values("global_step", kind="stable")["return"].to_numpy(dtype=float)


def final_return(episodes: pd.DataFrame, window: int = FINAL_WINDOW) -> tuple[float, int]:
    """(mean return of the last ``window`` episodes, episodes used); (nan, 0) if none.
    Episodes are in the order they finished (a stable sort on global_step); episodes cut
    short by a kill and resume (``truncated_by_resume``) do not count."""
    last = returns_in_order(episodes)[-window:]
    return (float(last.mean()), int(last.size)) if last.size else (np.nan, 0)


def best_return(episodes: pd.DataFrame, window: int = FINAL_WINDOW) -> float:
    """The best mean return of ``window`` consecutive episodes over training (the last
    window included; all episodes when fewer): CORL's "best" score, biased upward by the
    maximum, reported beside the final one and never used by the claims."""
    returns = pd.Series(returns_in_order(episodes))
    if not len(returns):
        return np.nan
    return float(returns.rolling(min(window, len(returns))).mean().max())


def final_eval_return(run: RLRun) -> float:
    """The run's held-out-level return: the trainer's own final figure when it finished,
    else the mean over the last evaluation round logged (rows at the largest global_step)."""
    if run.summary is not None and run.summary.get("final_eval_return_mean") is not None:
        return float(run.summary["final_eval_return_mean"])
    if not len(run.eval):
        return np.nan
    last = run.eval["global_step"].max()
    return float(run.eval.loc[run.eval["global_step"] == last, "return"].mean())


def load_classification_run(path: str | Path) -> ClassificationRun:
    run_dir = run_dir_of(path)
    summary = read_summary(run_dir / "summary.json", ("dataset", "experiment", "loss", "seed"))
    ident = (summary if summary is not None
             else _identity_from_path(run_dir, ("dataset", "experiment", "loss")))
    per_class = read_csv(run_dir / "per_class.csv", PER_CLASS_COLUMNS, PER_CLASS_NUMERIC,
                         optional=summary is None)
    status = _status(summary, per_class)
    if per_class is None:
        per_class = pd.DataFrame({c: pd.Series(dtype=float) for c in PER_CLASS_COLUMNS})
    return ClassificationRun(run_dir=run_dir, dataset=ident["dataset"],
                             experiment=ident["experiment"], loss=ident["loss"],
                             seed=ident["seed"], status=status, summary=summary,
                             per_class=per_class)
