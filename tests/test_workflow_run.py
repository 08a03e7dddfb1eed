"""The smoke preset end to end (every rule but the online Caltech fetch), once per test
session in a temporary copy of the workflow; then, against that finished run, the reruns a
user makes, executed: a forcerun of a finished RL cell and of a classifier cell, a deleted
output requested again, a real code edit, a kill -9 of snakemake mid-training and the same
command again. What must run nothing is checked with dry runs (an unchanged config, a
comment-only edit, changed run settings, a second checkout); what must run a subset is
planned too (a one-cell change, a new seed).

The smoke grid runs once per session; each test works on its own copy of the finished run
(``smoke_run``), so tests may edit and rerun it in any order and repair nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from scopeloss import lifecycle

from user_losses import MODULE as USER_MODULE
from workflow_helpers import BIN, ROOT, copy_workflow, count, hparams, plan, snakemake

SMOKE = ("--configfile", "presets/smoke.yaml")
RL_DOWNSTREAM = {"aggregate_rl", "plot_training_curves", "plot_rl_aggregate",
                 "plot_exploration", "claims_table", "seed_plan", "all"}
CLS_DOWNSTREAM = {"aggregate_classification", "precision_tables", "claims_table", "seed_plan",
                  "all"}


# One worker runs this file's tests: the smoke run they share is made once (pytest-xdist).
pytestmark = pytest.mark.xdist_group("smoke_run")


@pytest.fixture(scope="session")
def finished_smoke(tmp_path_factory):
    """The smoke grid, run once per session; tests never touch it (see ``smoke_run``)."""
    wf = copy_workflow(tmp_path_factory.mktemp("smoke"))
    proc = snakemake(wf, "--cores", "2", *SMOKE, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return wf, out


@pytest.fixture()
def smoke_run(finished_smoke, tmp_path):
    """Each test's own copy of the finished smoke run (mtimes and Snakemake's metadata kept,
    so it plans nothing): a test may edit, delete and rerun, and no test depends on what
    another left behind. Removed afterwards (a copy holds the runs' checkpoints)."""
    source, out = finished_smoke
    wf = tmp_path / "smoke"
    shutil.copytree(source, wf, symlinks=True)
    yield wf, out
    shutil.rmtree(wf, ignore_errors=True)


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


def test_the_disk_plan_matches_what_the_finished_runs_keep(smoke_run):
    """`make plan`'s disk line, from the shapes of what each run keeps, against the bytes
    the smoke grid's finished checkpoints hold (within 10%): a finished run keeps its
    weights (the classifier: the best ones) and no optimiser state."""
    import torch

    from scopeloss import grid, plan

    wf, _ = smoke_run
    config = grid.load_config(str(wf / "config.yaml"), str(wf / "presets/smoke.yaml"))
    predicted = plan.disk(config)["kept"]
    held = {kind: sum(f.stat().st_size for f in (wf / "results" / kind).glob("**/.ckpt/*"))
            for kind in ("rl", "classification")}
    for kind in held:
        assert abs(held[kind] - predicted[kind]) <= 0.1 * held[kind], (kind, held, predicted)
    for ckpt in (wf / "results").glob("**/.ckpt/*.pt"):
        state = torch.load(ckpt, weights_only=True)
        assert "optimizer" not in state and ckpt.name != "last.pt" or "model" not in state


def test_report_collects_the_figures_and_tables_with_captions(smoke_run):
    wf, _ = smoke_run
    proc = snakemake(wf, *SMOKE, "--report", "report.html")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    html = (wf / "report.html").read_text(errors="replace")
    for name in ("rl_training_curves.png", "rl_aggregate.png", "rl_final.csv",
                 "precision_plain.csv", "precision_by_class_frequency.png"):
        assert name in html, name


def test_make_report_builds_the_report_of_a_preset_run(smoke_run):
    """`make report CONFIGS="presets/smoke.yaml threads.yaml"` (the Makefile's own target,
    in the run's directory, with the checkout's venv) after the smoke preset run."""
    wf, _ = smoke_run
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(ROOT / name, wf / name)
    venv = BIN.parent
    # two overlays, the second a run setting only: one `--configfile a b` to Snakemake
    (wf / "threads.yaml").write_text("rl: {run: {torch_threads: 1}}\n")
    proc = subprocess.run(["make", "report", f"VENV={venv}",
                           "CONFIGS=presets/smoke.yaml threads.yaml",
                           "REPORT=preset report.html"], cwd=wf, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    html = (wf / "preset report.html").read_text(errors="replace")
    assert "rl_training_curves.png" in html and "precision_plain.csv" in html


# ----------------------------------------------------------------------------- executed reruns
def execute(wf, *args: str) -> str:
    # targets and options first: --configfile takes every word after it
    proc = snakemake(wf, "--cores", "2", *args, *SMOKE, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


def rl_outputs(run: Path) -> dict[str, str]:
    return {name: (run / name).read_text() for name in ("episodes.csv", "updates.csv")}


def test_forcerun_of_a_finished_rl_cell_rebuilds_its_outputs_without_training(smoke_run):
    wf, _ = smoke_run
    run = wf / "results/rl/CartPole/policy/seed1"
    before, summary = rl_outputs(run), json.loads((run / "summary.json").read_text())
    out = execute(wf, "--forcerun", f"{run.relative_to(wf)}/summary.json")
    assert "train_rl" in out
    log = (wf / "logs/rl/CartPole/policy/seed1.log").read_text()
    assert "rebuilding outputs from the final checkpoint" in log, log
    assert "update 1/" not in log  # no update ran
    assert rl_outputs(run) == before  # Snakemake deleted them; rebuilt identical
    again = json.loads((run / "summary.json").read_text())
    assert again["global_step"] == summary["global_step"] == 1024
    assert again["episodes"] == summary["episodes"]
    assert plan(wf, *SMOKE) == []


def test_forcerun_of_a_finished_classifier_cell_rebuilds_without_training(smoke_run):
    wf, _ = smoke_run
    run = wf / "results/classification/digits_lt/plain/scope/seed1"
    per_class, history = (run / "per_class.csv").read_text(), (run / "history.csv").read_text()
    execute(wf, "--forcerun", f"{run.relative_to(wf)}/summary.json")
    log = (wf / "logs/classification/digits_lt/plain/scope/seed1.log").read_text()
    assert "rebuilding outputs from the final checkpoint" in log, log
    assert "epoch 1:" not in log  # no epoch ran
    assert (run / "per_class.csv").read_text() == per_class
    assert (run / "history.csv").read_text() == history
    assert plan(wf, *SMOKE) == []


def test_a_deleted_output_requested_again_is_rebuilt_from_the_checkpoint(smoke_run):
    wf, _ = smoke_run
    run = wf / "results/rl/Pong/scope/seed1"
    before = rl_outputs(run)
    (run / "updates.csv").unlink()
    execute(wf, f"{run.relative_to(wf)}/updates.csv")
    assert "rebuilding outputs from the final checkpoint" in (
        wf / "logs/rl/Pong/scope/seed1.log").read_text()
    assert rl_outputs(run) == before
    # The classifier's deleted per-class table, likewise.
    crun = wf / "results/classification/digits_lt/augmented/ce/seed1"
    table = (crun / "per_class.csv").read_text()
    (crun / "per_class.csv").unlink()
    execute(wf, f"{crun.relative_to(wf)}/per_class.csv")
    assert (crun / "per_class.csv").read_text() == table
    # Downstream tables and figures are now older than their inputs: the next full run
    # refreshes them, and retrains nothing.
    execute(wf)
    assert plan(wf, *SMOKE) == []


def test_comment_and_docstring_edits_plan_no_training_job(smoke_run):
    wf, _ = smoke_run
    module = wf / "src/scopeloss/rl/ppo.py"
    text = module.read_text()
    module.write_text(text.replace('"""PPO (Schulman', '"""Proximal Policy Optimisation: PPO (Schulman', 1)
                      + "\n# a comment only\n")
    try:
        assert plan(wf, *SMOKE) == []
    finally:
        module.write_text(text)


def test_run_settings_rerun_nothing(smoke_run):
    wf, _ = smoke_run
    args = overlay(wf, "run_settings.yaml",
                   "rl: {run: {checkpoint_every: 3, device: cpu, torch_threads: 2, compile: true}}\n"
                   "classification: {run: {num_workers: 2, checkpoint_every: 2, torch_threads: 2}}\n")
    assert plan(wf, *args) == []


def test_a_second_checkout_reruns_nothing(smoke_run, tmp_path):
    """The same results directory driven from another copy of the workflow (another path):
    nothing about where the code lives is a param."""
    wf, _ = smoke_run
    other = copy_workflow(tmp_path / "elsewhere")
    proc = snakemake(wf, "-n", "--snakefile", str(other / "Snakefile"), *SMOKE)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Nothing to be done" in out, out[-3000:]


def test_kill_9_mid_training_then_the_same_command_keeps_every_logged_episode(smoke_run):
    """snakemake is killed with SIGKILL while its job trains; the job stops within seconds
    (no orphan); the README's command again (with --rerun-incomplete, which Snakemake asks
    for) finishes, and every episode logged before the kill is still in episodes.csv, and
    the summary agrees with episodes.csv."""
    wf, _ = smoke_run
    args = overlay(wf, "long.yaml", "rl: {envs: [CartPole], losses: [policy], seeds: [7],"
                   " env_specs: {CartPole: {total_steps: 61440}}}\n")
    target = "results/rl/CartPole/policy/seed7/summary.json"
    episodes = wf / "results/rl/CartPole/policy/seed7/episodes.csv"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([str(BIN / "snakemake"), target, "--cores", "2", *args], cwd=wf,
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    logged = None
    while time.monotonic() < deadline:
        if episodes.is_file():
            frame = pd.read_csv(episodes)
            if len(frame) >= 20:
                logged = frame
                break
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.2)
    assert logged is not None, "no episodes logged in time"
    # SIGKILL to snakemake alone, as `kill -9 PID` does: its training job must not run on as
    # an orphan (scopeloss.lifecycle stops it), or it would race the rerun below
    trainer = int((wf / "results/rl/CartPole/policy/seed7/.lock").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while (lifecycle.process_status(trainer) or ("Z",))[0] != "Z":
        assert time.monotonic() < deadline, "the training job outlived the killed snakemake"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # anything else of that session (none expected)
    # its lock goes once its last thread has exited (a moment after the main one, under load)
    while True:
        try:
            with lifecycle.own_run_dir(wf / "results/rl/CartPole/policy/seed7"):
                break
        except lifecycle.RunDirBusy:
            assert time.monotonic() < deadline + 15, "the killed trainer's lock stayed held"
            time.sleep(0.2)
    logged = pd.read_csv(episodes)  # what was on disk at the kill
    summary = json.loads((wf / "results/rl/CartPole/policy/seed7/summary.json").read_text()) \
        if (wf / target).is_file() else None
    assert summary is None or summary.get("global_step") != 61440, "killed after finishing"

    again = snakemake(wf, target, "--cores", "2", "--rerun-incomplete", *args, timeout=900)
    out = again.stdout + again.stderr
    if again.returncode != 0 and "unlock" in out:  # Snakemake's own advice after a kill
        assert snakemake(wf, "--unlock", *args).returncode == 0
        again = snakemake(wf, target, "--cores", "2", "--rerun-incomplete", *args, timeout=900)
        out = again.stdout + again.stderr
    assert again.returncode == 0, out[-5000:]
    log = (wf / "logs/rl/CartPole/policy/seed7.log").read_text()
    assert "resuming" in log, log
    final = pd.read_csv(episodes)
    assert json.loads((wf / target).read_text())["global_step"] == 61440
    cols = ["global_step", "return", "length"]
    kept = final[cols].merge(logged[cols], how="inner")
    assert len(kept) == len(logged), "episodes logged before the kill went missing"
    summary = json.loads((wf / target).read_text())
    assert summary["episodes"] == len(final)
    shutil.rmtree(wf / "results/rl/CartPole/policy/seed7")


def readme_recipe() -> dict[str, str]:
    """The README's "Add your loss" recipe: its module, overlay and command, verbatim."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text.split("## Add your loss and compare it with Scope", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for lang, body in re.findall(r"```(python|yaml|bash)\n(.*?)```", section, re.S):
        blocks.setdefault(lang, body)  # the first block of each kind: the three steps
    module = re.search(r"\*\*1\. Write the module\*\*, `([^`]+)`", section).group(1)
    overlay = re.search(r"\*\*2\. Name it in an overlay\*\*, `([^`]+)`", section).group(1)
    return {"module_path": module, "module": blocks["python"], "overlay_path": overlay,
            "overlay": blocks["yaml"], "command": blocks["bash"].strip()}


def test_the_readme_recipe_runs_a_users_loss_through_the_grid(smoke_run):
    """Exactly the README's three steps, on the smoke grid: a module outside src/ adds a PPO
    and a supervised loss, the overlay names them (as the candidates); only their cells
    train, and their rows reach the tables, figures and claims. Editing the module's code
    retrains its cells only; a comment retrains nothing."""
    wf, _ = smoke_run
    recipe = readme_recipe()
    module = wf / recipe["module_path"]
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(recipe["module"])
    (wf / recipe["overlay_path"]).write_text(recipe["overlay"])
    words = recipe["command"].split()
    assert words[:4] == ["snakemake", "--cores", "all", "--configfile"], words
    args = ["--cores", "2", "--configfile", "presets/smoke.yaml",
            *[w for w in words[4:] if w != "presets/demo.yaml"]]
    try:
        jobs = plan(wf, *args)
        trained = {(j["rule"], j["wildcards"]["loss"]) for j in jobs
                   if j["rule"].startswith("train_")}
        assert trained == {("train_rl", "my_pg"), ("train_classifier", "my_ce")}
        assert count(jobs)["train_rl"] == 2 and count(jobs)["train_classifier"] == 2
        proc = snakemake(wf, *args, timeout=900)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        final = pd.read_csv(wf / "results/tables/rl_final.csv")
        mine = final[final["loss"] == "my_pg"]
        assert set(mine["env"]) == {"CartPole", "Pong"} and set(mine["loss_name"]) == {"My PG"}
        summary = json.loads((wf / "results/rl/Pong/my_pg/seed1/summary.json").read_text())
        assert summary["hparams"]["loss"] == {"alpha": 0.02}  # the overlay's loss_specs
        assert "+" in summary["code_fingerprint"]
        claims = (wf / "results/tables/claims.md").read_text()
        assert "## A. My PG beats each other policy loss" in claims
        assert "| My PG vs Policy |" in claims and "| My PG vs Scope |" in claims
        assert "| My CE vs CEL |" in claims and "| My CE vs SL |" in claims
        table = (wf / "results/tables/precision_plain.md").read_text()
        assert "| Precision metric | SL | CEL | My CE |" in table, table
        from PIL import Image

        with Image.open(wf / "figures/rl_aggregate.png") as img:
            assert "P(My PG > X)" in img.info["Description"]
        with Image.open(wf / "figures/rl_training_curves.png") as img:
            assert "my_pg" in img.info["Description"]
        # a comment in the module: nothing retrains
        module.write_text("# my losses, commented\n" + recipe["module"])
        assert not [j for j in plan(wf, *args) if j["rule"].startswith("train_")]
        # a statement changed: the cells of its losses retrain from the start, no other
        module.write_text(recipe["module"].replace("pow(2)", "pow(3)"))
        jobs = plan(wf, *args)
        assert {(j["rule"], j["wildcards"]["loss"]) for j in jobs if j["rule"].startswith(
            "train_")} == {("train_rl", "my_pg"), ("train_classifier", "my_ce")}
        proc = snakemake(wf, *args, timeout=900)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        log = (wf / "logs/rl/Pong/my_pg/seed1.log").read_text()
        assert "update 1/" in log and "resuming" not in log, log
    finally:
        (wf / recipe["overlay_path"]).unlink(missing_ok=True)
        shutil.rmtree(module.parent, ignore_errors=True)


def test_losses_with_needs_state_and_post_hoc_run_through_the_grid(smoke_run):
    """A user's module in the round-5 contract (counts + progress, state, eval_logits, and a PPO
    loss needing everything) through Snakemake: only its cells train, and each run's log
    table carries the loss's metrics as loss_<name> columns."""
    wf, _ = smoke_run
    (wf / "ext").mkdir(exist_ok=True)
    (wf / "ext/field.py").write_text(USER_MODULE)
    args = overlay(wf, "field.yaml", textwrap.dedent("""
        loss_modules: [ext/field.py]
        rl: {envs: [CartPole], losses: [policy, scope, stateful_pg]}
        classification:
          experiments: [plain]
          losses: [ce, scope, deferred_weights, running_ce, posthoc_first]
        """))
    trained = {(j["rule"], j["wildcards"]["loss"]) for j in plan(wf, *args)
               if j["rule"].startswith("train_")}
    assert trained == {("train_rl", "stateful_pg"), ("train_classifier", "deferred_weights"),
                       ("train_classifier", "running_ce"), ("train_classifier", "posthoc_first")}
    proc = snakemake(wf, "--cores", "2", *args, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    runs = wf / "results/classification/digits_lt/plain"
    history = pd.read_csv(runs / "deferred_weights/seed1/history.csv")
    assert history["loss_progress"].tolist() == [0.0, 0.5]
    assert history["loss_reweighted"].tolist() == [0.0, 1.0]
    history = pd.read_csv(runs / "running_ce/seed1/history.csv")
    assert history["loss_steps"].is_monotonic_increasing and history["loss_p_mean"].gt(0).all()
    summary = json.loads((runs / "posthoc_first/seed1/summary.json").read_text())
    assert summary["never_predicted"] == summary["num_classes"] - 1  # all class 0, post hoc
    updates = pd.read_csv(wf / "results/rl/CartPole/stateful_pg/seed1/updates.csv")
    assert updates["loss_update"].tolist() == list(range(1, len(updates) + 1))
    assert updates["loss_calls"].is_monotonic_increasing
    final = pd.read_csv(wf / "results/tables/rl_final.csv")
    assert "stateful_pg" in set(final["loss"])


def readme_sweep() -> dict[str, str]:
    """The README's "Sweep a loss parameter" recipe: its overlay and command, verbatim."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text.split("## Sweep a loss parameter", 1)[1].split("\n## ", 1)[0]
    path = re.search(r"three lines, `([^`]+)`", section).group(1)
    (overlay,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    (command,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return {"overlay_path": path, "overlay": overlay, "command": command.strip()}


def test_the_readme_sweep_trains_only_its_new_cells_and_draws_claim_d(smoke_run):
    """The README's sweep, three lines, over the smoke grid: only the two new values of
    Scope's alpha train (0.01 is scope's own, finished cell), each in a directory of its own
    whose summary records the base loss and the parameter; the tables label them, the
    sensitivity figure draws the three values per env, claim D's row names the sweep (not
    run: one seed per cell has no spread to put its margin on), and claim A still compares
    Scope with Policy only."""
    wf, _ = smoke_run
    recipe = readme_sweep()
    assert len(recipe["overlay"].strip().splitlines()) == 3
    (wf / recipe["overlay_path"]).write_text(recipe["overlay"])
    words = recipe["command"].split()
    assert words[:4] == ["snakemake", "--cores", "all", "--configfile"], words
    args = ["--configfile", "presets/smoke.yaml",
            *[w for w in words[4:] if w != "presets/demo.yaml"]]
    before = (wf / "results/rl/Pong/scope/seed1/episodes.csv").read_text()
    try:
        jobs = plan(wf, *args)
        trained = sorted((j["wildcards"]["env"], j["wildcards"]["loss"]) for j in jobs
                         if j["rule"].startswith("train_"))
        assert trained == [(e, f"scope_alpha{v}") for e in ("CartPole", "Pong")
                           for v in ("0.001", "0.1")]
        proc = snakemake(wf, "--cores", "2", *args, timeout=900)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        summary = json.loads((wf / "results/rl/Pong/scope_alpha0.1/seed1/summary.json")
                             .read_text())
        assert summary["loss"] == "scope_alpha0.1"
        assert summary["hparams"]["loss"] == {"loss": "scope", "alpha": 0.1}
        assert (wf / "results/rl/Pong/scope/seed1/episodes.csv").read_text() == before
        final = pd.read_csv(wf / "results/tables/rl_final.csv")
        assert set(final.loc[final["loss"] == "scope_alpha0.1", "loss_name"]) == {
            "Scope (alpha=0.1)"}
        from PIL import Image

        with Image.open(wf / "figures/rl_sensitivity.png") as img:
            desc = img.info["Description"]
        # Pong's smoke budget ends before an episode does: its panel is left out, by name
        assert ("panels: CartPole, Pong, all;" in desc
                or ("panels: CartPole, all;" in desc and "left out: Pong" in desc)), desc
        assert "values: 0.001, 0.01, 0.1" in desc
        table = pd.read_csv(wf / "results/tables/claims.csv")
        d = table[table["claim_id"] == "D"]
        assert list(d["comparison"].str.split(" vs ").str[0]) == ["Scope: alpha=0.01 (default)"]
        assert "one seed per cell" in d["note"].iloc[0]  # the smoke grid runs seed 1 alone
        a = table[table["claim_id"] == "A"]
        assert set(a["comparison"]) <= {"Scope vs Policy"}
    finally:
        (wf / recipe["overlay_path"]).unlink(missing_ok=True)


def test_a_real_code_edit_retrains_that_trainers_cells_from_the_start(smoke_run):
    """A statement changed in the PPO trainer: every RL cell retrains from update 1 (its
    checkpoint is of other code), no classifier job runs."""
    wf, _ = smoke_run
    module = wf / "src/scopeloss/rl/ppo.py"
    text = module.read_text()
    module.write_text(text + "\nEDITED_FOR_A_TEST = True\n")
    try:
        jobs = plan(wf, *SMOKE)
        assert count(jobs)["train_rl"] == 4
        assert set(count(jobs)) == {"train_rl"} | RL_DOWNSTREAM
        execute(wf)
        for env in ("CartPole", "Pong"):
            log = (wf / f"logs/rl/{env}/scope/seed1.log").read_text()
            assert "update 1/" in log and "resuming" not in log, log
    finally:
        module.write_text(text)
    # Back to the original code: its fingerprint differs from the checkpoints' again, so the
    # RL cells (and only they) are planned once more.
    jobs = plan(wf, *SMOKE)
    assert count(jobs)["train_rl"] == 4 and set(count(jobs)) == {"train_rl"} | RL_DOWNSTREAM
