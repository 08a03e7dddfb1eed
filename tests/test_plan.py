"""scopeloss.plan: the cost arithmetic on a small grid, worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from scopeloss import plan
from scopeloss.classify.config import resolve_dataset

ROOT = Path(__file__).resolve().parents[1]

OVERLAY = {
    "rl": {"envs": ["Pong", "StarPilot"], "losses": ["policy", "scope"], "seeds": [1],
           "env_specs": {"Pong": {"total_steps": 1000, "num_envs": 1, "num_steps": 100},
                         "StarPilot": {"total_steps": 3000, "num_envs": 1, "num_steps": 100}}},
    "classification": {
        "datasets": ["digits_lt"], "experiments": ["plain"], "losses": ["ce"], "seeds": [1],
        "dataset_specs": {"digits_lt": {"imbalance_ratio": 10, "max_per_class": 174,
                                        "val_fraction": 0.15, "test_fraction": 0.25}},
        "experiment_specs": {"plain": {"model": "resnet18", "epochs": 2}}},
}
RATES = {"machine": "by hand", "rl": {"atari": 10, "procgen": 20, "Breakout": 999},
         "classification": {"resnet18": 100}, "scaling": {1: 1.0, 2: 1.5}}

# By hand. digits_lt keeps floor(174 * 10^(-c/9)) of each digit class c:
# 174 134 104 80 62 48 37 29 22 17 = 707 images; val round(0.15 * 707) = 106,
# test round(0.25 * 707) = 177, train 707 - 106 - 177 = 424.
# One classifier job: 2 epochs x (424 + 106/3) + 177/3 = 977.667 images at 100/s.
CLS_S = (2 * (424 + 106 / 3) + 177 / 3) / 100
# RL: Pong 1000 steps at 10/s = 100 s (x2 losses); StarPilot 3000 at 20/s = 150 s (x2).
JOBS_S = [100, 100, 150, 150, CLS_S]


@pytest.fixture
def files(tmp_path):
    overlay = tmp_path / "small.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    rates = tmp_path / "rates.yaml"
    rates.write_text(yaml.safe_dump(RATES))
    return [str(ROOT / "config.yaml"), str(overlay)], rates


def test_split_and_cells_by_hand(files):
    configs, _ = files
    config = plan.grid.load_config(*configs)
    assert plan.dataset_images(plan.grid.dataset_cell(config, "digits_lt")) == 707
    assert plan.split_sizes(plan.grid.dataset_cell(config, "digits_lt")) == (424, 106, 177)
    cells = plan.cells(config)
    assert [(c["kind"], c["suite"], c["name"], c["units"]) for c in cells[:4]] == [
        ("rl", "atari", "Pong", 1000), ("rl", "atari", "Pong", 1000),
        ("rl", "procgen", "StarPilot", 3000), ("rl", "procgen", "StarPilot", 3000)]
    assert cells[4]["units"] == pytest.approx(977.6667, abs=1e-3)
    assert plan.dataset_images(resolve_dataset("caltech256")) == 30607
    # numbers_lt: sum over ranks r of floor(40 * 10^(-r/99)), whatever the ranking
    numbers = resolve_dataset("numbers_lt", {"imbalance_ratio": 10, "max_per_class": 40})
    assert plan.dataset_images(numbers) == sum(math.floor(40 * 10 ** (-r / 99)) for r in range(100))


def test_one_gpu_one_job(files):
    configs, rates = files
    est = plan.estimate(plan.grid.load_config(*configs), plan.load_rates(rates), gpus=1, k=1)
    assert est["cells"] == 5
    assert est["job_hours"] == pytest.approx(sum(JOBS_S) / 3600)
    assert est["wall_hours"] == pytest.approx(sum(JOBS_S) / 3600)  # one slot: one after another
    assert est["gpu_hours"] == pytest.approx(sum(JOBS_S) / 3600)
    groups = {(g["suite"], g["name"]): g for g in est["groups"]}
    assert groups[("atari", "Pong")]["cells"] == 2 and groups[("atari", "Pong")]["rate"] == 10
    assert groups[("procgen", "StarPilot")]["job_hours"] == pytest.approx(300 / 3600)


def test_two_jobs_per_gpu_with_measured_scaling(files):
    """K=2, scaling 1.5: each job runs 2/1.5 = 4/3 as long: 133.3 133.3 200 200 13.04 s.
    Longest first on 2 slots: A 200+133.3+13.04, B 200+133.3 -> wall 346.37 s."""
    configs, rates = files
    est = plan.estimate(plan.grid.load_config(*configs), plan.load_rates(rates), gpus=1, k=2)
    wall = 200 + 400 / 3 + CLS_S * 4 / 3
    assert est["wall_hours"] * 3600 == pytest.approx(wall)
    assert est["gpu_hours"] * 3600 == pytest.approx(wall)  # one GPU held for the wall time
    assert est["job_hours"] == pytest.approx(sum(JOBS_S) / 3600)  # alone: unchanged
    assert est["scaling"] == 1.5 and est["scaling_measured"]


def test_two_gpus_and_the_assumed_scaling(files):
    configs, rates = files
    config, r = plan.grid.load_config(*configs), plan.load_rates(rates)
    # G=2, K=1: A 150+100+9.78, B 150+100 -> 259.78 s; GPU-hours = 2 x wall.
    est = plan.estimate(config, r, gpus=2, k=1)
    assert est["wall_hours"] * 3600 == pytest.approx(250 + CLS_S)
    assert est["gpu_hours"] * 3600 == pytest.approx(2 * (250 + CLS_S))
    # K=4 not measured: assumed perfect (4 jobs' worth), flagged as an assumption.
    est = plan.estimate(config, r, gpus=1, k=4)
    assert est["scaling"] == 4 and not est["scaling_measured"]
    assert est["wall_hours"] * 3600 == pytest.approx(150)  # 4 slots, no slowdown


def test_makespan():
    assert plan.makespan([], 3) == 0
    # longest first onto the slot free soonest: 5->A, 4->B, 3->B (7), 3->A (8), 3->B (10)
    assert plan.makespan([3, 5, 3, 4, 3], 2) == 10
    assert plan.makespan([3, 5, 3, 4, 3], 5) == 5


def test_cli_prints_the_report_and_json(files, capsys):
    configs, rates = files
    args = [a for c in configs for a in ("--configfile", c)]
    assert plan.main([*args, "--throughput", str(rates), "--gpus", "1", "--jobs-per-gpu", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 GPU(s) x 2 job(s) per GPU" in out and "1.5 x one job (measured)" in out
    assert "5 training jobs" in out and "StarPilot" in out and "resnet18" in out
    assert plan.main([*args, "--throughput", str(rates), "--gpus", "1", "--jobs-per-gpu", "2",
                      "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert math.isclose(est["wall_hours"] * 3600, 200 + 400 / 3 + CLS_S * 4 / 3)


def test_a_missing_rate_names_what_to_add(files, tmp_path):
    configs, _ = files
    rates = tmp_path / "partial.json"
    rates.write_text(json.dumps({"rl": {"atari": 10}}))
    args = [a for c in configs for a in ("--configfile", c)]
    with pytest.raises(SystemExit, match="no throughput for rl StarPilot / procgen"):
        plan.main([*args, "--throughput", str(rates), "--gpus", "1"])


def test_calibrate_measures_through_the_real_trainer(tmp_path, capsys):
    """--calibrate on a tiny grid (CartPole, resnet18 at 32 px): positive rates, saved."""
    overlay = tmp_path / "tiny.yaml"
    overlay.write_text(yaml.safe_dump({
        "rl": {"envs": ["CartPole"], "losses": ["policy"], "seeds": [1]},
        "classification": {"datasets": ["digits_lt"], "experiments": ["plain"], "losses": ["ce"],
                           "seeds": [1], "experiment_specs": {"plain": {
                               "model": "resnet18", "epochs": 1, "batch_size": 8}}}}))
    saved = tmp_path / "rates.yaml"
    assert plan.main(["--configfile", str(ROOT / "config.yaml"), "--configfile", str(overlay),
                      "--calibrate", "--calibrate-updates", "2", "--calibrate-iters", "1",
                      "--gpus", "1", "--save-rates", str(saved)]) == 0
    rates = yaml.safe_load(saved.read_text())
    assert rates["rl"]["CartPole"] > 0 and rates["classification"]["resnet18@32"] > 0
    assert "calibrated on this machine" in capsys.readouterr().out
