"""A loss that goes non-finite, or returns more than one number, stops either trainer CLI
with one line naming the loss, the update / epoch and the last good checkpoint: exit 1, no
traceback, no complete summary (the aggregator reads the run as incomplete). The losses are
a user's own module, as a researcher would write them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from classifier_helpers import classifier_args

from scopeloss.analysis.runs import COMPLETE, load_classification_run, load_rl_run

ROOT = Path(__file__).resolve().parents[1]
MODULE = '''
import torch
import torch.nn.functional as F

from scopeloss.losses import (clipped_surrogate, float_log_probs, register_ppo_loss,
                              register_supervised_loss)

_calls = {"ppo": 0, "evals": 0}


@register_ppo_loss("pg_nan_later")
def pg_nan_later(logits, actions, old_logprob, advantages, *, clip_coef):
    """Finite for the first update (2 minibatches), NaN from the second."""
    _calls["ppo"] += 1
    l_clip, _ = clipped_surrogate(float_log_probs(logits), actions, old_logprob, advantages,
                                  clip_coef)
    loss = -l_clip.mean()
    return loss * float("nan") if _calls["ppo"] > 2 else loss


@register_supervised_loss("ce_nan_later")
def ce_nan_later(logits, targets):
    """Finite through epoch 1 and its validation, NaN in training from then on."""
    loss = F.cross_entropy(logits.float(), targets)
    if not torch.is_grad_enabled():
        _calls["evals"] += 1
        return loss
    return loss * float("nan") if _calls["evals"] else loss


@register_supervised_loss("ce_per_sample")
def ce_per_sample(logits, targets):
    return F.cross_entropy(logits.float(), targets, reduction="none")
'''


def run(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    (tmp_path / "mine.py").write_text(MODULE)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", *argv, "--loss-module", "mine.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def last_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


def test_rl_a_loss_gone_nan_stops_naming_it_the_update_and_the_checkpoint(tmp_path):
    out = tmp_path / "CartPole/pg_nan_later/seed1"  # the workflow's layout
    proc = run(tmp_path, ["scopeloss.rl.train", "--env", "CartPole-v1", "--seed", "1",
                          "--loss", "pg_nan_later", "--out", str(out),
                          "--set", "ppo.num_envs=2", "--set", "ppo.num_steps=32",
                          "--set", "ppo.num_minibatches=2", "--set", "ppo.update_epochs=1",
                          "--set", "ppo.total_steps=512", "--set", "run.checkpoint_every=1",
                          "--set", "run.tensorboard=false"])
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = last_line(proc)
    assert line.startswith("error: non-finite loss at update 2 with PPO policy loss "
                           "'pg_nan_later' (policy nan"), line
    assert f"the last good checkpoint is update 1 ({out}/" in line, line
    assert "resumes from update 2" in line
    assert not (out / "summary.json").exists()
    assert load_rl_run(out).status != COMPLETE


def test_classifier_a_loss_gone_nan_stops_naming_it_the_epoch_and_the_checkpoint(tmp_path):
    out = tmp_path / "digits_lt/plain/ce_nan_later/seed1"  # the workflow's layout
    proc = run(tmp_path, ["scopeloss.classify.train", *classifier_args(
        tmp_path / "data", out, "experiment.epochs=4", "dataset.max_per_class=20",
        "experiment.batch_size=32", "run.checkpoint_every=1", "run.tensorboard=false",
        loss="ce_nan_later")])
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = last_line(proc)
    assert line.startswith("error: non-finite loss (nan) in epoch 2 with supervised loss "
                           "'ce_nan_later'; the last good checkpoint is epoch 1 ("), line
    assert not (out / "summary.json").exists()
    assert load_classification_run(out).status != COMPLETE


def test_a_loss_that_returns_a_vector_is_named(tmp_path):
    out = tmp_path / "run"
    proc = run(tmp_path, ["scopeloss.classify.train", *classifier_args(
        tmp_path / "data", out, "experiment.epochs=2", "dataset.max_per_class=20",
        "experiment.batch_size=32", "run.tensorboard=false", loss="ce_per_sample")])
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = last_line(proc)
    assert line == ("error: supervised loss 'ce_per_sample' returned a tensor of shape (32,); "
                    "a loss returns one scalar tensor (the batch mean), or (scalar, {name: "
                    "scalar tensor})"), line
    assert not (out / "summary.json").exists()
