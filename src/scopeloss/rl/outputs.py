"""What a PPO run leaves in its directory (docs/CONTRACT.md): ``episodes.csv``, ``updates.csv``,
``eval.csv`` (Procgen), ``summary.json``, all written atomically from the run's state
(the dict the checkpoint holds), so a rebuild from the final checkpoint writes the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeloss import atomic
from scopeloss.losses import metric_columns
from scopeloss.params import EnvConfig

EPISODE_COLUMNS = ["global_step", "return", "length", "truncated_by_resume"]
EVAL_COLUMNS = ["global_step", "return", "length"]
UPDATE_COLUMNS = ["update", "global_step", "policy_loss", "value_loss", "entropy", "approx_kl",
                  "clipfrac", "max_prob", "action_top_share", "update_action_top_share", "lr",
                  "sps"]


def output_names(env_cfg: EnvConfig) -> tuple[str, ...]:
    names = ("episodes.csv", "updates.csv", "summary.json")
    return names + ("eval.csv",) if env_cfg.traits.held_out else names


def _episode_frame(rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(rows[:, :4], columns=EPISODE_COLUMNS).astype(
        {"global_step": "int64", "length": "int64", "truncated_by_resume": "int64"})


def write_outputs(out: Path, env_cfg: EnvConfig, st: dict[str, Any]) -> None:
    """Write episodes.csv, updates.csv (and eval.csv for procgen) from the state ``st``."""
    atomic.write_csv(out / "episodes.csv", _episode_frame(st["episodes"]))
    atomic.write_csv(out / "updates.csv", pd.DataFrame(
        st["updates"], columns=metric_columns(st["updates"], UPDATE_COLUMNS)))
    if env_cfg.traits.held_out:
        atomic.write_csv(out / "eval.csv", pd.DataFrame(st["eval"], columns=EVAL_COLUMNS).astype(
            {"global_step": "int64", "length": "int64"}))


def write_finished(out: Path, env_cfg: EnvConfig, st: dict[str, Any],
                   identity: dict[str, Any]) -> dict[str, Any]:
    """A finished run's outputs: the CSVs, then summary.json (returned)."""
    write_outputs(out, env_cfg, st)
    summary = make_summary(identity, env_cfg, st)
    atomic.write_json(out / "summary.json", summary)
    return summary


def make_summary(identity: dict[str, Any], env_cfg: EnvConfig, st: dict[str, Any]) -> dict[str, Any]:
    ep = st["episodes"]
    whole = ep[ep[:, 3] == 0]  # episodes that ended in the game, not by a resume
    last_eval = st["eval"][st["eval"][:, 0] == st["eval"][-1, 0]] if len(st["eval"]) else None
    sps = np.array([r["sps"] for r in st["updates"]])
    step_counts = np.diff([0] + [r["global_step"] for r in st["updates"]])
    in_flight = int(np.asarray(st["tracker"]["len"]).sum())
    return {
        **identity,
        "global_step": st["global_step"],
        "updates": len(st["updates"]),
        "frames": st["global_step"] * env_cfg.frames_per_step,
        "final_return_mean_100": float(whole[-100:, 1].mean()) if len(whole) else None,
        "final_eval_return_mean": float(last_eval[:, 1].mean()) if last_eval is not None
        and len(last_eval) else None,
        "episodes": int(len(ep)),
        "episodes_cut_by_resume": int(len(ep) - len(whole)),
        # Episodes that hit the env's step limit (Atari: max_episode_steps), of those that ended.
        "truncated_share": float(whole[:, 4].mean()) if len(whole) else None,
        "in_flight_steps": in_flight,
        "resumes": st["resumes"],
        "wall_time_s": st["wall_time_s"],
        "mean_sps": float(step_counts.sum() / (step_counts / sps).sum()) if len(sps) else None,
        "time_breakdown_s": st["timers"],
        "env_spec": st["env_spec"],
        "run_settings": st["run_settings"],
        "run_info": st["run_info"],
    }
