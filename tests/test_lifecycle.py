"""scopeloss.lifecycle: a trainer owns its run directory, and dies with its launcher.

Executed as a user meets them: a second trainer CLI started on a directory that a first one
is training in (it stops at once, names the directory and the holder's pid, writes nothing,
and the first run's outputs stay consistent), and a launcher killed with SIGKILL (its
trainer stops within seconds instead of running on as an orphan)."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from scopeloss import lifecycle

ROOT = Path(__file__).resolve().parents[1]
RL_CLI = [sys.executable, "-m", "scopeloss.rl.train", "--env", "CartPole-v1", "--loss", "scope",
          "--seed", "3", "--set", "run.checkpoint_every=1"]


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop(lifecycle.STOP_WITH_PID, None)
    return env


def _wait_for(pred, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _lock_free(out: Path) -> bool:
    """Whether a new trainer could take ``out`` now. The kernel drops a dead holder's lock
    when its last thread has exited, which under load can come a moment after its main
    thread shows as a zombie."""
    try:
        with lifecycle.own_run_dir(out):
            return True
    except lifecycle.RunDirBusy:
        return False


def _alive(pid: int) -> bool:
    status = lifecycle.process_status(pid)
    return status is not None and status[0] != "Z"


def test_a_second_holder_is_refused_with_the_directory_and_pid(tmp_path):
    with lifecycle.own_run_dir(tmp_path / "run") as out:
        assert (out / lifecycle.LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(lifecycle.RunDirBusy, match=rf"{out} is in use .*pid {os.getpid()}"):
            with lifecycle.own_run_dir(out):
                pass
    with lifecycle.own_run_dir(tmp_path / "run"):  # released at the end of the block
        pass


def test_a_lock_left_by_a_killed_holder_does_not_block(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from scopeloss import lifecycle\n"
        f"with lifecycle.own_run_dir({str(out)!r}):\n"
        "    print('held', flush=True); time.sleep(600)")], env=_env(), stdout=subprocess.PIPE,
        text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(lifecycle.RunDirBusy, match=f"pid {holder.pid}"):
        with lifecycle.own_run_dir(out):
            pass
    holder.kill()
    holder.wait()
    with lifecycle.own_run_dir(out):  # the kernel released the dead holder's lock
        pass


def test_a_second_trainer_on_the_same_out_stops_at_once_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([*RL_CLI, "--out", str(out), "--set", "ppo.total_steps=40000"],
                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    ckpt = out / ".ckpt" / "checkpoint.pt"
    _wait_for(ckpt.is_file, "the first trainer's checkpoint")
    second = subprocess.run([*RL_CLI, "--out", str(out), "--set", "ppo.total_steps=2048",
                             "--set", "ppo.lr=0.001"], env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"{out} is in use by another trainer (pid {first.pid})" in second.stderr
    assert "Traceback" not in second.stderr and second.stdout == ""
    assert first.poll() is None, "the first trainer should still be training"
    log = first.communicate(timeout=600)[0]
    assert first.returncode == 0, log[-3000:]
    # the outputs are those of the first run, and agree with each other
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hparams"]["ppo"]["total_steps"] == 40000
    assert summary["hparams"]["ppo"]["lr"] != 0.001
    episodes = pd.read_csv(out / "episodes.csv")
    assert summary["episodes"] == len(episodes)


def test_a_trainer_stops_when_its_launcher_is_killed(tmp_path):
    """The rule's shell sets SCOPELOSS_STOP_WITH_PID=$PPID; here a stand-in launcher runs the
    trainer through bash the same way and is killed with SIGKILL."""
    out = tmp_path / "run"
    trainer = " ".join([*RL_CLI, "--out", str(out), "--set", "ppo.total_steps=2000000"])
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1], shell=True, "
         "executable='/bin/bash')",
         f"SCOPELOSS_STOP_WITH_PID=$PPID {trainer} > {tmp_path / 'log'} 2>&1"],
        env=_env(), start_new_session=True)
    lock = out / lifecycle.LOCK_NAME
    _wait_for(lambda: (out / ".ckpt" / "checkpoint.pt").is_file(), "a checkpoint")
    pid = int(lock.read_text())
    assert _alive(pid)
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    _wait_for(lambda: not _alive(pid), "the orphaned trainer to stop", timeout=15)
    log = (tmp_path / "log").read_text()
    assert f"the launcher (pid {launcher.pid}) is gone; stopping" in log, log[-2000:]
    # and a rerun can take the directory over
    _wait_for(lambda: _lock_free(out), "the dead trainer's lock to be released", timeout=15)


def test_a_signal_to_the_whole_process_group_stops_once_checkpointed(tmp_path):
    """SLURM's --signal reaches every process of the job step: the launcher dies of it while
    the trainer answers it. The watchdog then sees its launcher gone, but must not stop the
    trainer at once: the trainer finishes its update, checkpoints it and says so."""
    out = tmp_path / "run"
    # updates of a few seconds: the watchdog (1 s) sees the launcher gone mid-update
    trainer = " ".join([*RL_CLI, "--out", str(out), "--set", "ppo.total_steps=2000000",
                        "--set", "ppo.update_epochs=200", "--set", "ppo.num_minibatches=16",
                        "--run", "'{\"checkpoint_every\": 1}'"])
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1], shell=True, "
         "executable='/bin/bash')",
         f"SCOPELOSS_STOP_WITH_PID=$PPID {trainer} > {tmp_path / 'log'} 2>&1"],
        env=_env(), start_new_session=True)
    _wait_for(lambda: (out / ".ckpt" / "checkpoint.pt").is_file(), "a checkpoint")
    pid = int((out / lifecycle.LOCK_NAME).read_text())
    time.sleep(0.5)  # inside the next update
    os.killpg(launcher.pid, signal.SIGTERM)  # the launcher, its shell and the trainer
    launcher.wait()
    _wait_for(lambda: not _alive(pid), "the trainer to stop", timeout=30)
    log = (tmp_path / "log").read_text()
    assert re.search(r"interrupted \(SIGTERM\) after update \d+, checkpointed", log), log[-2000:]
    assert "interrupted again" not in log, log[-2000:]


def test_no_watch_without_the_variable_or_for_a_pid_that_is_no_ancestor(monkeypatch):
    lines = []
    monkeypatch.delenv(lifecycle.STOP_WITH_PID, raising=False)
    assert lifecycle.stop_with_launcher(lines.append) is None
    monkeypatch.setenv(lifecycle.STOP_WITH_PID, "1" if os.getppid() == 1 else str(2**22 + 7))
    if os.getppid() != 1:
        assert lifecycle.stop_with_launcher(lines.append) is None
        assert "is not an ancestor" in lines[-1]
    # (the watching case runs in a subprocess above: a watchdog here would outlive the test)


def test_moved_aside_checkpoints_are_bounded_to_the_newest(tmp_path):
    """Every settings change moves the checkpoint aside (.other): only the newest of each
    kind stays, each removal said with its size; the other kind is left alone."""
    from scopeloss import lifecycle

    said = []
    ckpt = tmp_path / "checkpoint.pt"
    (tmp_path / "checkpoint.pt.corrupt").write_bytes(b"c" * 10)
    for i in range(3):
        ckpt.write_bytes(b"x" * (1000 + i))
        lifecycle.quarantine(ckpt, "from other settings", said.append, suffix=".other")
    aside = sorted(p.name for p in tmp_path.iterdir())
    assert aside == ["checkpoint.pt.corrupt", "checkpoint.pt.other"], aside
    assert (tmp_path / "checkpoint.pt.other").stat().st_size == 1002  # the newest
    removed = [line for line in said if "removed (an older moved-aside checkpoint" in line]
    assert len(removed) == 2 and "the newest 1 kept" in removed[0]
