"""Fabricated run directories in the exact file formats of docs/CONTRACT.md ('Output
files'), for the analysis tests; tests/test_analysis_fakes.py checks them against the
contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from scopeloss.analysis.reference import ATARI_RANDOM_HUMAN, PROCGEN_MIN_MAX

UPDATES_HEADER = ["update", "global_step", "policy_loss", "value_loss", "entropy", "approx_kl",
                  "clipfrac", "max_prob", "action_top_share", "update_action_top_share", "lr",
                  "sps"]


def env_spec(env: str) -> dict:
    if env in ATARI_RANDOM_HUMAN:
        return {"suite": "atari", "game": env.lower(), "frameskip": 4,
                "repeat_action_probability": 0.25}
    if env in PROCGEN_MIN_MAX:
        return {"suite": "procgen", "game": env.lower(), "distribution_mode": "hard",
                "num_levels": 500}
    return {"suite": "gym", "game": env}


def make_rl_run(root: Path, env: str, loss: str, seed: int, returns, steps=None, *,
                total_steps: int | None = None, finished: bool = True, eval_rows=None,
                n_updates: int = 3, entropy=1.2, max_prob=0.4, truncated_by_resume=None,
                truncated_share=None, action_top_share=None, update_s=None,
                device="cpu (test)") -> Path:
    """results/rl/{env}/{loss}/seed{seed}/ with episodes.csv, updates.csv, (eval.csv) and,
    if ``finished``, summary.json. ``returns`` in the order the episodes finished.
    ``entropy``/``max_prob``: a value or one per update; ``truncated_by_resume``: None (an
    older run: no column) or a 0/1 flag per episode; ``truncated_share``: None (no key in
    the summary) or the share of episodes cut by the time limit; ``update_s``: the update
    phase's seconds in all (the trainer's timer), on ``device``."""
    run = Path(root) / "rl" / env / loss / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    returns = np.asarray(returns, dtype=float)
    steps = (np.arange(1, returns.size + 1) * 100 if steps is None
             else np.asarray(steps, dtype=np.int64))
    total = int(total_steps if total_steps is not None else (steps[-1] if steps.size else 1000))
    episodes = pd.DataFrame({"global_step": steps, "return": returns,
                             "length": np.full(returns.size, 50)})
    if truncated_by_resume is not None:
        episodes["truncated_by_resume"] = np.asarray(truncated_by_resume, dtype=int)
    episodes.to_csv(run / "episodes.csv", index=False)
    upd_steps = np.linspace(total / n_updates, total, n_updates).astype(int)
    pd.DataFrame({"update": np.arange(1, n_updates + 1), "global_step": upd_steps,
                  "policy_loss": 0.1, "value_loss": 0.5, "entropy": entropy, "approx_kl": 0.01,
                  "clipfrac": 0.1, "max_prob": max_prob,
                  "action_top_share": max_prob if action_top_share is None else action_top_share,
                  "update_action_top_share": max_prob if action_top_share is None
                  else action_top_share, "lr": 1e-4, "sps": 900.0},
                 columns=UPDATES_HEADER).to_csv(run / "updates.csv", index=False)
    if eval_rows is not None:
        pd.DataFrame(eval_rows, columns=["global_step", "return", "length"]).to_csv(
            run / "eval.csv", index=False)
    if finished:
        last = returns[-100:]
        summary = {"env": env, "loss": loss, "seed": seed, "total_steps": total,
                   "final_return_mean_100": float(last.mean()) if last.size else None,
                   "final_eval_return_mean": None, "episodes": int(returns.size),
                   "wall_time_s": 12.5, "mean_sps": 900.0,
                   "hparams": {"env": env_spec(env), "ppo": {"total_steps": total},
                               "loss": {"alpha": None}},
                   "env_spec": env_spec(env), "run_info": {"device": "cpu"}}
        if truncated_share is not None:
            summary["truncated_share"] = truncated_share
        if update_s is not None:
            summary.update(updates=n_updates, run_info={"device_name": device},
                           time_breakdown_s={"env": 1.0, "policy": 1.0, "update": update_s})
        if eval_rows is not None and len(eval_rows):
            ev = pd.DataFrame(eval_rows, columns=["global_step", "return", "length"])
            summary["final_eval_return_mean"] = float(
                ev.loc[ev["global_step"] == ev["global_step"].max(), "return"].mean())
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def make_cls_run(root: Path, dataset: str, experiment: str, loss: str, seed: int,
                 precision, train_count, *, finished: bool = True,
                 few_shot: float | None = None, images_per_s=(100.0, 120.0),
                 device: str = "cpu (test)") -> Path:
    """results/classification/{dataset}/{experiment}/{loss}/seed{seed}/."""
    run = Path(root) / "classification" / dataset / experiment / loss / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    precision = np.asarray(precision, dtype=float)
    n = precision.size
    per_class = pd.DataFrame({"class": np.arange(n), "name": [f"{i:03d}.class{i}" for i in range(n)],
                              "train_count": np.asarray(train_count, dtype=int),
                              "support": np.full(n, 10), "precision": precision,
                              "recall": precision * 0.9, "f1": precision * 0.95})
    pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.5], "train_acc": [0.2, 0.3],
                  "val_loss": [2.1, 1.7], "val_acc": [0.2, 0.25], "lr": [1e-3, 1e-3],
                  "epoch_time_s": [3.0, 3.0], "images_per_s": list(images_per_s)}).to_csv(
        run / "history.csv", index=False)
    if finished:
        per_class.to_csv(run / "per_class.csv", index=False)
        summary = {"dataset": dataset, "experiment": experiment, "loss": loss, "seed": seed,
                   "precision_mean": float(precision.mean()),
                   "precision_std": float(precision.std(ddof=0)),
                   "recall_mean": float((precision * 0.9).mean()),
                   "f1_mean": float((precision * 0.95).mean()), "top1": 0.5,
                   "balanced_accuracy": 0.45, "never_predicted": int((precision == 0).sum()),
                   "zero_division": "0", "best_epoch": 2, "epochs_run": 2, "hparams": {},
                   "run_info": {"device_name": device}, "wall_time_s": 6.0}
        if few_shot is not None:  # the long-tail metrics (summaries since round 5)
            summary.update({"many_shot_acc": 0.8, "medium_shot_acc": 0.6,
                            "few_shot_acc": few_shot, "shot_thresholds": [20.0, 100.0],
                            "shot_classes": [1, 1, 1]})
        (run / "summary.json").write_text(json.dumps(summary))
    return run
