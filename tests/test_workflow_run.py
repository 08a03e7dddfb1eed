"""The smoke preset end to end (every rule but the online Caltech fetch), once per test
session in a temporary copy of the workflow; then incremental reruns planned against
that finished run with dry runs: an unchanged config plans nothing, a one-cell change
plans that cell and what depends on it, a new seed plans only the new seed's jobs."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from test_workflow_plan import copy_workflow, count, hparams, plan, snakemake

SMOKE = ("--configfile", "presets/smoke.yaml")
RL_DOWNSTREAM = {"aggregate_rl", "plot_training_curves", "plot_rl_aggregate", "all"}
CLS_DOWNSTREAM = {"aggregate_classification", "precision_tables", "all"}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("smoke"))
    proc = snakemake(wf, "--cores", "2", *SMOKE, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return wf, out


def overlay(wf, name: str, text: str) -> tuple[str, ...]:
    path = wf / name
    path.write_text(text)
    return (*SMOKE, name)


# ----------------------------------------------------------------------------- the run
def test_smoke_run_produces_the_figure_tables_logs_and_benchmarks(smoke_run):
    wf, out = smoke_run
    png = (wf / "figures/rl_training_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (wf / "figures/rl_training_curves.pdf").read_bytes()[:4] == b"%PDF"
    assert (wf / "figures/rl_aggregate.png").stat().st_size > 0
    assert (wf / "figures/precision_by_class_frequency.png").stat().st_size > 0
    final = pd.read_csv(wf / "results/tables/rl_final.csv")
    assert {(r.env, r.loss) for r in final.itertuples()} == {
        (e, l) for e in ("CartPole", "Pong") for l in ("policy", "scope")}
    for exp in ("plain", "augmented"):
        table = (wf / f"results/tables/precision_{exp}.md").read_text()
        assert "| Mean precision |" in table and "SL" in table and "CEL" in table  # scope, ce
        assert (wf / f"results/tables/precision_{exp}.tex").stat().st_size > 0
    summary = pd.read_csv(wf / "results/tables/classification_summary.csv")
    assert len(summary) == 2 * 2 and set(summary["dataset"]) == {"digits_lt"}
    # Every training job: a log, a benchmark, and the cell's hyperparameters in its summary.
    for env in ("CartPole", "Pong"):
        for loss in ("policy", "scope"):
            run = wf / f"results/rl/{env}/{loss}/seed1"
            s = json.loads((run / "summary.json").read_text())
            assert s["hparams"]["ppo"]["total_steps"] == {"CartPole": 1024, "Pong": 512}[env]
            assert (wf / f"logs/rl/{env}/{loss}/seed1.log").stat().st_size > 0
            bench = (wf / f"results/benchmarks/rl/{env}/{loss}/seed1.tsv").read_text()
            assert bench.startswith("s\th:m:s") and len(bench.splitlines()) == 2
    bench = wf / "results/benchmarks/classification/digits_lt/plain/scope/seed1.tsv"
    assert bench.is_file()
    s = json.loads((wf / "results/classification/digits_lt/plain/scope/seed1/summary.json").read_text())
    assert s["hparams"]["experiment"]["model"] == "resnet18" and s["epochs_run"] >= 1
    # The final message says where the results are.
    assert "figures/rl_training_curves.png" in out
    assert "results/tables/precision_plain.md" in out


# ----------------------------------------------------------------------------- reruns
def test_unchanged_config_plans_nothing(smoke_run):
    wf, _ = smoke_run
    assert plan(wf, *SMOKE) == []


def test_one_env_budget_change_plans_only_that_envs_jobs(smoke_run):
    wf, _ = smoke_run
    args = overlay(wf, "more_steps.yaml", "rl: {env_specs: {CartPole: {total_steps: 2048}}}\n")
    jobs = plan(wf, *args)
    train = [j for j in jobs if j["rule"] == "train_rl"]
    assert sorted(j["wildcards"]["loss"] for j in train) == ["policy", "scope"]
    assert {j["wildcards"]["env"] for j in train} == {"CartPole"}
    assert all("Params have changed" in j["reason"] for j in train)
    assert all(hparams(j)["ppo"]["total_steps"] == 2048 for j in train)
    assert set(count(jobs)) == {"train_rl"} | RL_DOWNSTREAM


def test_one_experiment_lr_change_plans_only_that_experiments_jobs(smoke_run):
    wf, _ = smoke_run
    args = overlay(wf, "new_lr.yaml", "classification: {experiment_specs: {plain: {lr: 3.0e-4}}}\n")
    jobs = plan(wf, *args)
    train = [j for j in jobs if j["rule"] == "train_classifier"]
    assert {j["wildcards"]["experiment"] for j in train} == {"plain"}
    assert sorted(j["wildcards"]["loss"] for j in train) == ["ce", "scope"]
    assert set(count(jobs)) == {"train_classifier"} | CLS_DOWNSTREAM


def test_adding_a_seed_plans_only_the_new_seeds_jobs(smoke_run):
    wf, _ = smoke_run
    args = overlay(wf, "seed2.yaml", "rl: {seeds: [1, 2]}\nclassification: {seeds: [1, 2]}\n")
    jobs = plan(wf, *args)
    train = [j for j in jobs if j["rule"] in ("train_rl", "train_classifier")]
    assert {j["wildcards"]["seed"] for j in train} == {"2"}
    assert count(jobs)["train_rl"] == 4 and count(jobs)["train_classifier"] == 4
    assert set(count(jobs)) == {"train_rl", "train_classifier"} | RL_DOWNSTREAM | CLS_DOWNSTREAM


def test_a_code_change_reruns_only_the_rules_that_run_it(smoke_run):
    """Editing the classification trainer plans the classification jobs and their tables,
    no RL job. (Only touching a file is not a change: Snakemake compares checksums.)"""
    wf, _ = smoke_run
    module = wf / "src/scopeloss/classify/train.py"
    text, before = module.read_text(), module.stat()
    module.write_text(text + "\n# an edit\n")
    os.utime(module, (before.st_atime, before.st_mtime + 3600))
    try:
        jobs = plan(wf, *SMOKE)
    finally:
        module.write_text(text)
        os.utime(module, (before.st_atime, before.st_mtime))
    assert count(jobs)["train_classifier"] == 4
    assert set(count(jobs)) == {"train_classifier"} | CLS_DOWNSTREAM
    assert plan(wf, *SMOKE) == []  # restored: nothing to do again


def test_report_collects_the_figures_and_tables_with_captions(smoke_run):
    wf, _ = smoke_run
    proc = snakemake(wf, *SMOKE, "--report", "report.html")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    html = (wf / "report.html").read_text(errors="replace")
    for name in ("rl_training_curves.png", "rl_aggregate.png", "rl_final.csv",
                 "precision_plain.csv", "precision_by_class_frequency.png"):
        assert name in html, name
