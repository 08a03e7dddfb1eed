"""Clean interrupts (issue 29): SIGINT and SIGTERM stop a trainer at its next safe point with
one line and no traceback, a final checkpoint of the last completed update/epoch, exit
130/143; the same command then resumes with exact accounting. A second SIGINT stops at once."""

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from test_classify_runs import _args as classifier_args

NUM_UPDATES = 400
RL = [sys.executable, "-m", "scopeloss.rl.train", "--env", "CartPole-v1", "--loss", "policy",
      "--seed", "2", "--set", "ppo.num_envs=4", "--set", "ppo.num_steps=32",
      "--set", "ppo.update_epochs=1", "--set", "ppo.num_minibatches=2",
      "--set", f"ppo.total_steps={4 * 32 * NUM_UPDATES}", "--set", "run.torch_threads=1",
      "--set", "run.checkpoint_every=50", "--set", "run.tensorboard=false"]


def start(argv):
    return subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def wait_for(proc, needle, timeout=120):
    """Read stderr until a line holds ``needle``; the lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"never saw {needle!r}: {''.join(lines)[-2000:]}")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_rl_a_signal_checkpoints_says_so_and_the_same_command_resumes(tmp_path, sig, code):
    out = tmp_path / "run"
    argv = [*RL, "--out", str(out)]
    proc = start(argv)
    wait_for(proc, "update ")  # training is under way (the first progress line)
    time.sleep(0.5)
    proc.send_signal(sig)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    name = signal.Signals(sig).name
    assert last.startswith(f"interrupted ({name}) after update "), err
    done = int(last.split("after update ")[1].split(",")[0])
    assert 0 < done < NUM_UPDATES and f"resumes from update {done + 1}" in last
    # The final checkpoint is of that update, though checkpoint_every is 50.
    assert pd.read_csv(out / "updates.csv")["update"].max() == done
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"resuming {out} at update {done + 1}/{NUM_UPDATES}" in again.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 4 * 32 * NUM_UPDATES
    assert [r["update"] for r in summary["resumes"]] == [done + 1]
    updates = pd.read_csv(out / "updates.csv")["update"].tolist()
    assert updates == list(range(1, NUM_UPDATES + 1))
    episodes = pd.read_csv(out / "episodes.csv")
    assert episodes["length"].sum() + summary["in_flight_steps"] == summary["global_step"]


def test_rl_a_second_sigint_stops_at_once(tmp_path):
    proc = start([*RL, "--out", str(tmp_path / "run")])
    wait_for(proc, "update ")
    proc.send_signal(signal.SIGINT)
    wait_for(proc, "SIGINT received")
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted again: stopped at once")


def test_classifier_a_signal_checkpoints_the_last_epoch_and_the_same_command_resumes(tmp_path):
    root, out = tmp_path / "data", tmp_path / "run"
    argv = [sys.executable, "-m", "scopeloss.classify.train",
            *classifier_args(root, out, "experiment.epochs=30", "dataset.max_per_class=40",
                             "experiment.batch_size=32", "experiment.early_stopping_patience=null",
                             "run.checkpoint_every=100", "run.tensorboard=false")]
    proc = start(argv)
    wait_for(proc, "epoch 1:", timeout=300)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGINT) after epoch "), err
    done = int(last.split("after epoch ")[1].split(",")[0])
    assert f"resumes from epoch {done + 1}" in last
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"resuming {out} after epoch {done}" in again.stderr
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == list(range(1, 31))
