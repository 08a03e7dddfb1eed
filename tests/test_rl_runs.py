"""Short Atari and Procgen runs on CPU, determinism, resume after a kill, finished reruns."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from scopeloss import lifecycle
from scopeloss.rl.config import resolve
from scopeloss.rl.outputs import EPISODE_COLUMNS, EVAL_COLUMNS, UPDATE_COLUMNS
from scopeloss.rl.ppo import train

SMALL = {"num_envs": 4, "num_steps": 32, "update_epochs": 1, "num_minibatches": 2}
RUN = {"torch_threads": 1, "device": "cpu"}
SUMMARY_KEYS = {"env", "loss", "seed", "total_steps", "final_return_mean_100",
                "final_eval_return_mean", "episodes", "wall_time_s", "mean_sps", "hparams",
                "env_spec", "run_info", "code_fingerprint", "run_settings", "resumes",
                "truncated_share", "in_flight_steps"}


def quiet(_):
    pass


def check_common_outputs(out, total_steps):
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["global_step"] == summary["total_steps"] == total_steps
    episodes = pd.read_csv(out / "episodes.csv")
    updates = pd.read_csv(out / "updates.csv")
    assert list(episodes.columns) == EPISODE_COLUMNS
    assert list(updates.columns) == UPDATE_COLUMNS
    assert updates.global_step.iloc[-1] == total_steps
    assert summary["episodes"] == len(episodes)
    return summary, episodes, updates


def test_breakout_short_run_writes_every_output(tmp_path):
    # Episodes cut at 40 agent steps so that a few finish (and get bootstrapped) in 256 steps.
    hp = resolve("Breakout", "scope", {"ppo": {**SMALL, "total_steps": 256},
                                       "env": {"max_episode_steps": 40}})
    train(hp, seed=3, out=tmp_path, run=RUN, log=quiet)
    summary, episodes, updates = check_common_outputs(tmp_path, 256)
    assert len(updates) == 2 and len(episodes) >= 4
    assert (episodes.length <= 40).all() and (episodes["return"] >= 0).all()
    # Every episode hit the 40-step limit (ALE reports it as a truncation): recorded.
    assert summary["truncated_share"] == (episodes.length == 40).mean() == 1.0
    spec = summary["env_spec"]
    assert spec["ale_kwargs"]["repeat_action_probability"] == 0.25
    assert spec["ale_kwargs"]["frameskip"] == 4 and spec["ale_kwargs"]["stack_num"] == 4
    assert spec["ale_kwargs"]["reward_clipping"] is False  # raw score logged, sign learnt
    assert spec["ale_kwargs"]["max_num_frames_per_episode"] == 160
    assert summary["frames"] == 4 * 256
    assert not (tmp_path / "eval.csv").exists()


def test_starpilot_short_run_with_held_out_eval(tmp_path):
    hp = resolve("StarPilot", "policy_entropy",
                 {"ppo": {**SMALL, "total_steps": 256, "eval_every": 1, "eval_episodes": 2}})
    train(hp, seed=2, out=tmp_path, run=RUN, log=quiet)
    summary, episodes, updates = check_common_outputs(tmp_path, 256)
    evals = pd.read_csv(tmp_path / "eval.csv")
    assert list(evals.columns) == EVAL_COLUMNS
    assert len(evals) == 4 and sorted(set(evals.global_step)) == [128, 256]  # 2 per eval
    assert (evals.length > 0).all()
    assert summary["final_eval_return_mean"] == evals["return"].tail(2).mean()
    spec = summary["env_spec"]["procgen_kwargs"]
    assert (spec["distribution_mode"], spec["num_levels"], spec["start_level"]) == ("hard", 500, 0)


def test_same_seed_same_episodes_and_finished_rerun_is_a_noop(tmp_path):
    hp = resolve("CartPole-v1", "scope", {"ppo": {**SMALL, "total_steps": 4096}})
    for name in ("a", "b"):
        train(hp, seed=7, out=tmp_path / name, run=RUN, log=quiet)
    a = (tmp_path / "a" / "episodes.csv").read_text()
    assert len(a.splitlines()) > 50
    assert a == (tmp_path / "b" / "episodes.csv").read_text()
    other = tmp_path / "c"
    train(hp, seed=8, out=other, run=RUN, log=quiet)
    assert (other / "episodes.csv").read_text() != a

    # Rerunning the finished job changes nothing and says so.
    before = {f: (tmp_path / "a" / f).stat().st_mtime_ns for f in ("summary.json", "episodes.csv")}
    said = []
    t0 = time.perf_counter()
    train(hp, seed=7, out=tmp_path / "a", run=RUN, log=said.append)
    assert time.perf_counter() - t0 < 2.0 and "already finished" in said[0]
    assert before == {f: (tmp_path / "a" / f).stat().st_mtime_ns for f in before}


def test_killed_run_resumes_to_the_same_total_and_keeps_episodes(tmp_path):
    out = tmp_path / "run"
    total = 61_440  # 120 updates of 4 x 128; a checkpoint every 5 updates
    cmd = [sys.executable, "-m", "scopeloss.rl.train", "--env", "CartPole-v1", "--loss",
           "policy", "--seed", "5", "--out", str(out), "--set", f"ppo.total_steps={total}",
           "--set", "run.checkpoint_every=5", "--set", "run.torch_threads=1"]
    ckpt = out / ".ckpt" / "checkpoint.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    state = lifecycle.read_checkpoint(ckpt)
    assert 5 <= state["update"] < 120  # killed mid-run, after a checkpoint
    kept = state["state"]["episodes"][:, :4]
    assert len(kept) > 0 and not (out / "summary.json").exists()

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {out} at update {state['update'] + 1}/120" in rerun.stderr
    in_flight = state["state"]["tracker"]["len"]
    summary, episodes, updates = check_common_outputs(out, total)
    assert updates["update"].tolist() == list(range(1, 121))  # no update lost or repeated
    np.testing.assert_array_equal(episodes.to_numpy()[: len(kept)], kept)
    assert episodes.global_step.is_monotonic_increasing
    # The episodes in flight at the checkpoint are logged, flagged, at its step.
    cut = episodes.iloc[len(kept): len(kept) + int((in_flight > 0).sum())]
    assert (cut.truncated_by_resume == 1).all()
    assert (cut.global_step == state["state"]["global_step"]).all()
    assert sorted(cut.length) == sorted(in_flight[in_flight > 0])
    assert episodes.truncated_by_resume.sum() == len(cut)
    assert summary["resumes"] == [{"update": state["update"] + 1,
                                   "global_step": state["state"]["global_step"],
                                   "episodes_cut": len(cut), "steps_cut": int(in_flight.sum()),
                                   "env_seed": summary["resumes"][0]["env_seed"]}]
    assert episodes.length.sum() + summary["in_flight_steps"] == total

    # And once more: finished, so nothing happens.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already finished" in again.stderr


def test_bf16_autocast_path_runs_and_is_inert_on_cpu_by_default(tmp_path, monkeypatch):
    # The GPU path (bf16 autocast) exercised on CPU: the tests let autocast act on "cpu".
    from scopeloss import devices

    def run(name, bf16):
        hp = resolve("Breakout", "scope", {"ppo": {**SMALL, "total_steps": 256, "bf16": bf16},
                                           "env": {"max_episode_steps": 40}})
        train(hp, seed=3, out=tmp_path / name, run=RUN, log=quiet)
        return check_common_outputs(tmp_path / name, 256)[2]

    fp32, default_bf16 = run("fp32", False), run("bf16_default", True)
    pd.testing.assert_frame_equal(fp32.drop(columns="sps"), default_bf16.drop(columns="sps"))
    monkeypatch.setattr(devices, "BF16_AUTOCAST_DEVICES", {"cuda", "cpu"})
    bf16 = run("bf16", True)
    losses = ["policy_loss", "value_loss", "entropy", "max_prob"]
    assert np.isfinite(bf16[losses].to_numpy()).all()
    assert not np.allclose(bf16[losses], fp32[losses], rtol=1e-6, atol=0)  # autocast acted
    assert np.allclose(bf16["entropy"], fp32["entropy"], rtol=0.05)  # yet the same run


@pytest.mark.parametrize("mode", [True, "reduce-overhead"])
def test_torch_compile_path_runs_and_checkpoints_the_plain_module(tmp_path, mode):
    # run.compile wraps the network in torch.compile (inductor, C++ on CPU; reduce-overhead
    # adds CUDA graphs on a GPU and runs as the default mode on a CPU); checkpoints must
    # hold the plain module's weights so that a run without compile can resume from them.
    hp = resolve("CartPole-v1", "scope", {"ppo": {**SMALL, "total_steps": 512}})
    train(hp, seed=5, out=tmp_path,
          run={**RUN, "compile": mode}, log=quiet)
    _, episodes, updates = check_common_outputs(tmp_path, 512)
    assert len(episodes) > 5 and np.isfinite(updates[["policy_loss", "value_loss"]]).all().all()
    ckpt = lifecycle.read_checkpoint(tmp_path / ".ckpt" / "checkpoint.pt")
    assert not any(k.startswith("_orig_mod.") for k in ckpt["model"])
