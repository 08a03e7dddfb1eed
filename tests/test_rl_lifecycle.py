"""The run lifecycle (skip / rebuild outputs / resume / fresh), lossless resume accounting,
and checkpoint failures (corrupt, stale temporaries, a failed write)."""

import json
import resource
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch

from scopeloss import lifecycle
from scopeloss.rl import ppo
from scopeloss.rl.config import resolve

SMALL = {"num_envs": 4, "num_steps": 32, "update_epochs": 1, "num_minibatches": 2}
RUN = {"torch_threads": 1, "device": "cpu", "checkpoint_every": 3}
TOTAL = 4 * 32 * 30  # 30 updates


class Killed(Exception):
    pass


def kill_after_checkpoints(monkeypatch, n):
    """Make the n-th checkpoint written from now the last thing the job does (a kill right
    after it: what is on disk is exactly that checkpoint and the outputs written with it)."""
    real = lifecycle.save_checkpoint
    seen = [0]

    def save(path, obj):
        real(path, obj)
        seen[0] += 1
        if seen[0] == n:
            raise Killed(obj["update"])

    monkeypatch.setattr(lifecycle, "save_checkpoint", save)


def cartpole(total=TOTAL):
    return resolve("CartPole-v1", "policy", {"ppo": {**SMALL, "total_steps": total}})


def run(out, log=None, hp=None, **settings):
    said = [] if log is None else log
    summary = ppo.train(hp or cartpole(), seed=4,
                        out=out, run={**RUN, **settings}, log=said.append)
    return summary, said


def test_kill_resume_accounts_for_every_step(tmp_path, monkeypatch):
    whole, _ = run(tmp_path / "whole")
    out = tmp_path / "killed"
    kills = []
    for n in (2, 3):  # killed after update 6, then (resumed at 7) after update 15
        kill_after_checkpoints(monkeypatch, n)
        with pytest.raises(Killed) as info:
            run(out)
        kills.append(info.value.args[0])
        monkeypatch.undo()
    assert kills == [6, 15]
    summary, said = run(out)
    assert any("resuming" in line and "at update 16/30" in line for line in said)

    assert summary["global_step"] == whole["global_step"] == TOTAL
    assert [r["update"] for r in summary["resumes"]] == [7, 16]
    assert [r["global_step"] for r in summary["resumes"]] == [6 * 128, 15 * 128]
    episodes = pd.read_csv(out / "episodes.csv")
    assert list(episodes.columns) == ["global_step", "return", "length", "truncated_by_resume"]
    cut = episodes[episodes.truncated_by_resume == 1]
    assert len(cut) == sum(r["episodes_cut"] for r in summary["resumes"]) > 0
    assert cut.length.sum() == sum(r["steps_cut"] for r in summary["resumes"])
    assert summary["episodes_cut_by_resume"] == len(cut)
    # Every step of every env is in some episode row or in flight at the end.
    for o, s in ((out, summary), (tmp_path / "whole", whole)):
        ep = pd.read_csv(o / "episodes.csv")
        assert ep.length.sum() + s["in_flight_steps"] == s["global_step"]
        assert ep.global_step.is_monotonic_increasing
    # Up to the first kill the runs are the same run.
    updates, whole_updates = (pd.read_csv(d / "updates.csv") for d in (out, tmp_path / "whole"))
    assert updates["update"].tolist() == list(range(1, 31))
    cols = ["policy_loss", "value_loss", "entropy"]
    pd.testing.assert_frame_equal(updates[cols].head(6), whole_updates[cols].head(6))
    assert whole["resumes"] == [] and whole["episodes_cut_by_resume"] == 0


@pytest.mark.parametrize("lost", ["summary.json", "episodes.csv", "updates.csv"])
def test_finished_run_with_a_missing_output_is_rebuilt_without_training(tmp_path, lost):
    out = tmp_path / "run"
    first, _ = run(out, hp=cartpole(1024))
    before = {f: (out / f).read_text() for f in ("episodes.csv", "updates.csv")}
    (out / lost).unlink()
    again, said = run(out, hp=cartpole(1024))
    assert any("rebuilding outputs from the final checkpoint" in line for line in said)
    assert not any(line.startswith("update ") for line in said)  # no training
    assert {f: (out / f).read_text() for f in before} == before
    assert again == json.loads((out / "summary.json").read_text())
    assert again["global_step"] == 1024 and again["episodes"] == first["episodes"]
    _, said = run(out, hp=cartpole(1024))
    assert "already finished" in said[0]


def test_changed_run_settings_resume_and_changed_code_starts_afresh(tmp_path, monkeypatch):
    out = tmp_path / "run"
    kill_after_checkpoints(monkeypatch, 1)
    with pytest.raises(Killed):
        run(out)
    monkeypatch.undo()
    # Other run settings: the checkpoint stays valid.
    kill_after_checkpoints(monkeypatch, 1)
    with pytest.raises(Killed):
        run(out, checkpoint_every=5, torch_threads=2, env_threads=2, tensorboard=False)
    monkeypatch.undo()
    state = lifecycle.read_checkpoint(out / ".ckpt" / "checkpoint.pt")
    assert state["update"] == 5  # resumed at 4, next checkpoint at 5
    assert state["state"]["resumes"][0]["update"] == 4
    assert state["state"]["run_settings"]["checkpoint_every"] == 5
    # Other code: never resume an older checkpoint.
    monkeypatch.setattr(ppo, "cell_fingerprint", lambda trainer, loss: "other-code")
    summary, said = run(out)
    assert any("checkpoint is from other code" in line for line in said)
    assert not any("resuming" in line for line in said)
    assert summary["resumes"] == [] and summary["code_fingerprint"] == "other-code"
    assert summary["run_settings"]["checkpoint_every"] == 3
    assert pd.read_csv(out / "updates.csv")["update"].tolist() == list(range(1, 31))


@pytest.mark.parametrize("content", [b"", b"garbage, not a zip", "truncated"])
def test_corrupt_checkpoint_is_moved_aside_and_the_run_starts_afresh(tmp_path, content):
    out = tmp_path / "run"
    ckpt = out / ".ckpt" / "checkpoint.pt"
    if content == "truncated":
        run(out, hp=cartpole(1024))
        data = ckpt.read_bytes()
        (out / "summary.json").unlink()
        content = data[: len(data) // 2]
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(content)
    summary, said = run(out, hp=cartpole(1024))
    bad = [line for line in said if "unreadable checkpoint" in line]
    assert len(bad) == 1 and str(ckpt) in bad[0] and "checkpoint.pt.corrupt" in bad[0]
    assert (out / ".ckpt" / "checkpoint.pt.corrupt").read_bytes() == content
    assert summary["global_step"] == 1024 and summary["resumes"] == []


def test_a_crafted_checkpoint_is_moved_aside_and_only_the_newest_aside_is_kept(tmp_path):
    """A readable dict with the right keys but wrong types (the reliability probe's
    {'meta': 1, 'update': 3, 'state': {}}) crashed every rerun; now it is moved aside like any
    unreadable checkpoint under a name of its own, and the older one moved aside is removed,
    said in the log (disk stays bounded)."""
    out = tmp_path / "run"
    ckpt = out / ".ckpt" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"meta": 1, "update": 3, "state": {}}, ckpt)
    (ckpt.parent / "checkpoint.pt.corrupt").write_bytes(b"an earlier corrupt checkpoint")
    summary, said = run(out, hp=cartpole(1024))
    bad = [line for line in said if "unreadable checkpoint" in line]
    assert len(bad) == 1 and "malformed: identity" in bad[0] and "checkpoint.pt.corrupt.1" in bad[0]
    assert not (ckpt.parent / "checkpoint.pt.corrupt").exists()
    removed = [line for line in said if "removed (an older moved-aside checkpoint" in line]
    assert len(removed) == 1 and str(ckpt.parent / "checkpoint.pt.corrupt:") in removed[0]
    assert lifecycle.read_checkpoint(ckpt.parent / "checkpoint.pt.corrupt.1")["update"] == 3
    assert summary["global_step"] == 1024 and summary["resumes"] == []


def test_stale_temporaries_are_removed_at_start(tmp_path):
    out = tmp_path / "run"
    stale = [out / ".ckpt" / ".checkpoint.pt.k1ll3d.tmp", out / ".episodes.csv.abc123.tmp"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    _, said = run(out, hp=cartpole(512))
    assert not any(p.exists() for p in stale)
    assert any("removed 2 stale temporary file(s)" in line for line in said)


def test_failed_checkpoint_write_names_the_path_and_the_os_error(tmp_path):
    # A real OS error from a real write: the file size limit (EFBIG) stands in for a full
    # disk (ENOSPC); the CSVs are small, the checkpoint (~150 kB) is not.
    out = tmp_path / "run"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    proc = subprocess.run(
        [sys.executable, "-m", "scopeloss.rl.train", "--env", "CartPole-v1", "--loss", "policy",
         "--seed", "1", "--out", str(out), "--set", "ppo.total_steps=1024",
         "--set", "ppo.num_envs=2", "--set", "ppo.num_steps=128",  # 4 updates: the first
         "--set", "run.torch_threads=1", "--set", "run.checkpoint_every=1"],  # has the optimiser
        capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert f"could not write checkpoint {out / '.ckpt' / 'checkpoint.pt'}" in last
    assert "File too large" in last and "bytes free in" in last
    assert not list((out / ".ckpt").glob("*.tmp"))  # the partial file is gone
