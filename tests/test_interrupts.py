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

from classifier_helpers import classifier_args

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


# ----------------------------------------------------------------------------- early signals
EARLY_RL = [sys.executable, "-m", "scopeloss.rl.train", "--env", "MinAtarBreakout",
            "--loss", "scope", "--seed", "1", "--set", "ppo.total_steps=10000000",
            "--set", "run.torch_threads=1", "--set", "run.tensorboard=false"]


def _signal_at(argv, offset: float, sig=signal.SIGINT):
    """Send ``sig`` ``offset`` s after the start (a terminal's Ctrl-C in the first seconds):
    (exit code, stderr)."""
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    time.sleep(offset)
    proc.send_signal(sig)
    try:
        err = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    return proc.returncode, err


def _stopped_cleanly(code, err, sig, unit):
    name = signal.Signals(sig).name
    assert code == 128 + sig, (code, err[-3000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "interrupted again" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert (last.endswith(f"interrupted ({name}) before the first {unit}: nothing was lost")
            or f"interrupted ({name}) after {unit} " in last), last


@pytest.mark.parametrize("offset", [0.3, 0.5, 1.0, 2.5, 4.0])
def test_rl_a_signal_in_the_first_seconds_stops_cleanly(tmp_path, offset):
    """MinAtar (whose import swallows KeyboardInterrupt in a bare except) at a budget it
    cannot finish: the signal at any offset stops the run, one line, never a traceback."""
    code, err = _signal_at([*EARLY_RL, "--out", str(tmp_path / "run")], offset)
    _stopped_cleanly(code, err, signal.SIGINT, "update")


@pytest.mark.parametrize("offset", [0.5, 1.0, 2.5, 4.0])
def test_classifier_a_signal_in_the_first_seconds_stops_cleanly(tmp_path, offset):
    argv = [sys.executable, "-m", "scopeloss.classify.train",
            *classifier_args(tmp_path / "data", tmp_path / "run", "experiment.epochs=200",
                             "dataset.max_per_class=40", "run.tensorboard=false")]
    code, err = _signal_at(argv, offset)
    _stopped_cleanly(code, err, signal.SIGINT, "epoch")


def test_sigterm_at_start_up_exits_143_with_one_line(tmp_path):
    code, err = _signal_at([*EARLY_RL, "--out", str(tmp_path / "run")], 1.0, signal.SIGTERM)
    _stopped_cleanly(code, err, signal.SIGTERM, "update")


@pytest.mark.parametrize("offset", [0.3, 1.5, 3.0])
def test_ctrl_c_to_a_snakemake_run_stops_it_cleanly_and_the_same_command_finishes(
        tmp_path, offset):
    """A terminal's Ctrl-C goes to the whole process group: Snakemake and the trainer it
    started, ``offset`` s after the job's start (the trainer's imports, set-up, first
    updates). No traceback from either; the same command then runs the job to the end.
    (Ctrl-C in Snakemake's own first seconds, before any job, prints Snakemake's traceback:
    its code, not ours; nothing was started.)"""
    import os

    from workflow_helpers import BIN, copy_workflow

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    target = "results/rl/CartPole/policy/seed1/summary.json"
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile", "presets/smoke.yaml",
           "--", target]
    # On a loaded machine (the suite on every core) this test's process can be scheduled so
    # late that the short job is over before the Ctrl-C is sent: then nothing was tested,
    # and it tries again on a fresh copy (the checks below apply to every Ctrl-C that landed).
    for attempt in range(3):
        wf = copy_workflow(tmp_path / f"wf{attempt}")
        proc = subprocess.Popen(cmd, cwd=wf, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        log = wf / "logs/rl/CartPole/policy/seed1.log"
        deadline = time.monotonic() + 120
        while not log.exists() and time.monotonic() < deadline:  # the job has started
            time.sleep(0.05)
        time.sleep(offset)
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=300)[0]
        lines = log.read_text().strip().splitlines() if log.exists() else []
        too_late = proc.returncode == 0 and bool(lines) and lines[-1].startswith("finished ")
        if not too_late:
            break
    assert proc.returncode != 0 and "Traceback" not in out, out[-3000:]
    if log.exists() and log.read_text().strip():
        text = log.read_text()
        assert "Traceback" not in text and "interrupted again" not in text, text[-3000:]
        assert text.strip().splitlines()[-1].startswith("interrupted (SIGINT)"), text[-3000:]
    again = subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert json.loads((wf / target).read_text())["global_step"] == 1024
