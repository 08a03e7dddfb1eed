"""Planning the workflow without running it: `snakemake -n` on the paper grid and the
presets, preset overlays as Snakemake merges them, bad configs stopping at parse time,
`--lint`, snakefmt and the profiles (gpu_slot.py: tests/test_gpu_slot.py).

The helpers (`copy_workflow`, `snakemake`, `plan`) are tests/workflow_helpers.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workflow_helpers import (BIN, ROOT, copy_workflow, count, hparams, plan,  # noqa: F401
                              run_settings, snakemake)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("plan"))


# ----------------------------------------------------------------------------- planning
def test_paper_grid_plans_every_cell_and_fetches_caltech(fresh):
    jobs = plan(fresh)
    assert count(jobs) == {"train_rl": 96, "train_classifier": 66, "fetch_caltech256": 1,
                           "prepare_dataset": 1, "aggregate_rl": 1, "aggregate_classification": 1,
                           "plot_training_curves": 1, "plot_rl_aggregate": 1,
                           "plot_exploration": 1, "claims_table": 1, "seed_plan": 1,
                           "precision_tables": 1, "all": 1}
    rl = {(j["wildcards"]["env"], j["wildcards"]["loss"], j["wildcards"]["seed"])
          for j in jobs if j["rule"] == "train_rl"}
    assert len(rl) == 96 and ("MontezumaRevenge", "focal", "3") in rl
    cls = {tuple(j["wildcards"][k] for k in ("experiment", "loss", "seed"))
           for j in jobs if j["rule"] == "train_classifier"}
    assert ("augmented", "balanced_softmax", "3") in cls and len(cls) == 66
    assert ("augmented_cuda", "scope", "1") in cls and ("plain_balanced", "ce", "2") in cls
    pong = next(j for j in jobs if j["rule"] == "train_rl" and j["wildcards"]["env"] == "Pong")
    assert hparams(pong)["ppo"]["total_steps"] == 10_000_000
    # The commands are the package's CLIs, with src/ on PYTHONPATH and a GPU slot per job;
    # the run settings travel apart from the hyperparameters.
    assert "PYTHONPATH=src" in pong["shell"]
    assert "gpu_slot.py --gpus 1 -- python -m scopeloss.rl.train" in pong["shell"]
    assert run_settings(pong) == {}  # config.yaml sets none: the declared ones (device auto)
    assert "device" not in hparams(pong)["ppo"]
    fetch = next(j for j in jobs if j["rule"] == "fetch_caltech256")
    assert "scopeloss.classify.data fetch --dataset caltech256 --root data" in fetch["shell"]
    prepare = next(j for j in jobs if j["rule"] == "prepare_dataset")
    assert "--index results/data/caltech256.json" in prepare["shell"]


def test_caltech_is_not_fetched_when_its_images_are_there(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "data/caltech256/256_ObjectCategories/001.ak47").mkdir(parents=True)
    assert "fetch_caltech256" not in count(plan(wf))


def test_demo_preset_is_an_overlay_merged_by_snakemake(fresh):
    """`--configfile presets/demo.yaml` over config.yaml: lists replace (envs, losses,
    seeds), mappings merge key by key (MinAtar Breakout keeps config.yaml's env keys and
    PPO hyperparameters, gets the demo budget)."""
    jobs = plan(fresh, "--configfile", "presets/demo.yaml")
    c = count(jobs)
    assert c["train_rl"] == 3 * 4 * 3 and c["train_classifier"] == 2 * 4 * 3
    assert "fetch_caltech256" not in c
    envs = {j["wildcards"]["env"] for j in jobs if j["rule"] == "train_rl"}
    assert envs == {"MinAtarBreakout", "MinAtarSeaquest", "MinAtarSpaceInvaders"}
    job = next(j for j in jobs if j["rule"] == "train_rl"
               and j["wildcards"]["env"] == "MinAtarBreakout")
    h = hparams(job)
    assert h["ppo"]["total_steps"] == 100_000 and run_settings(job)["device"] == "cpu"  # demo
    assert "gpu_slot.py --gpus 0 --" in job["shell"]  # a cpu cell asks for no GPU
    assert h["env"]["sticky_action_prob"] == 0.1 and h["ppo"]["lr"] == 1e-4  # config.yaml
    assert h["ppo"]["num_steps"] == 64 and h["ppo"]["gamma"] == 0.999
    clf = next(j for j in jobs if j["rule"] == "train_classifier"
               and j["wildcards"]["experiment"] == "augmented")
    exp = hparams(clf)["experiment"]
    assert exp["model"] == "resnet18" and exp["optimizer"] == "sgd"  # demo + paper
    assert exp["augmentation"]["crop_padding"] == 2 and exp["augmentation"]["flip_p"] == 0.0
    assert exp["augmentation"]["color"] == [1.0, 0.3]  # config.yaml (paper, Table 5)


def test_smoke_preset_runs_every_rule_except_the_online_fetches_and_sweeps(fresh):
    c = count(plan(fresh, "--configfile", "presets/smoke.yaml"))
    rules = set(re.findall(r"^rule (\w+):", "\n".join(
        p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk")), flags=re.M))
    # plot_sensitivity needs a sweep: the README's sweep runs it (tests/test_workflow_run.py)
    assert set(c) == (rules - {"fetch_caltech256", "fetch_cifar", "plot_sensitivity"}) | {"all"}


# ----------------------------------------------------------------------------- bad config
@pytest.mark.parametrize(
    "overlay, message",
    [
        ("rl: {envs: [Pong, Pongg]}", "config key rl.envs: unknown name 'Pongg'; it must be built in or a key of rl.env_specs"),
        ("rl: {ppo: {total_steps: -5}}", "invalid config key rl.ppo.total_steps: -5 is less than or equal to the minimum of 0"),
        ("classification: {experiment_specs: {plain: {lr: fast}}}",
         "invalid config key classification.experiment_specs.plain.lr: 'fast' is not of type 'number'"),
        ("classification: {losses: [ce, hinge]}", "config key classification.losses: unknown supervised loss 'hinge'; registered: pel,"),
        ("rl: {ppo: {device: cpu}}", "config key rl.ppo.device: a run setting (how a job runs, not what it learns); set it as rl.run.device instead"),
        ("rl: {seeds: [1, 1099511627776]}", "invalid config key rl.seeds[1]: 1099511627776 is greater than the maximum of 4294967295"),
        # loss variants and sweeps (docs/parameters.md)
        ("rl: {loss_specs: {scope_hi: {loss: scoop, alpha: 0.1}}}",
         "config key rl.loss_specs.scope_hi.loss: unknown PPO policy loss 'scoop'; registered: policy,"),
        ("rl: {loss_specs: {scope_hi: {loss: scope, gamma: 2}}}",
         "config key rl.loss_specs.scope_hi.gamma: loss 'scope' takes no parameter 'gamma' (its parameters: alpha)"),
        ("rl: {loss_specs: {focal: {loss: scope, alpha: 0.1}}}",
         "config key rl.loss_specs.focal: the variant name 'focal' shadows the registered PPO policy loss 'focal'"),
        ("classification: {sweeps: {pel: {alpha: []}}}",
         "invalid config key classification.sweeps.pel.alpha: [] should be non-empty"),
        ("rl: {sweeps: {scope: {beta: [1, 2]}}}",
         "config key rl.sweeps.scope.beta: loss 'scope' takes no parameter 'beta' (its parameters: alpha)"),
    ],
)
def test_bad_config_stops_at_parse_time_naming_the_key(fresh, tmp_path, overlay, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(overlay + "\n")
    proc = snakemake(fresh, "-n", "--configfile", str(bad))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out
    assert "Building DAG" not in out  # stopped before planning any job


def test_a_yaml_syntax_error_in_config_yaml_names_its_line(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    text = (wf / "config.yaml").read_text()
    (wf / "config.yaml").write_text(text.replace("seeds: [1, 2, 3]", "seeds: [1, 2, 3", 1))
    proc = snakemake(wf, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(r"config\.yaml:\d+:\d+: not valid YAML", out), out[-2000:]


# ----------------------------------------------------------------------------- style
# The launchers (GPU_SLOT, PY_CPU), the run settings (RL_RUN, CLASSIFY_RUN) and the loss
# modules the trainers import (LOSS_MODULE_ARGS: a cell of their losses reruns by its code
# fingerprint) are referenced in
# the shell templates on purpose, not passed as params: params are rerun triggers, and
# neither where the checkout lives nor how a job runs may rerun a cell (issue 10).
DELIBERATE_GLOBALS = {"GPU_SLOT", "PY_CPU", "RL_RUN", "CLASSIFY_RUN", "LOSS_MODULE_ARGS"}


def test_lint_reports_only_the_deliberate_globals(fresh):
    proc = snakemake(fresh, "--lint")
    out = proc.stdout + proc.stderr
    lints = [line.strip() for line in out.splitlines() if line.strip().startswith("* ")]
    used = set(re.findall(r"directly uses variable (\w+) from outside of the rule", out))
    assert used == DELIBERATE_GLOBALS, out[-3000:]
    assert all("directly uses variable" in line for line in lints), out[-3000:]


def test_snakefmt_leaves_the_workflow_unchanged():
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------- profiles
def test_local_profile_plans_with_gpu_tokens_and_threads_matching_k(fresh):
    """profiles/local: gpu tokens = G x K, set-threads = C / (G x K) (README: 1 GPU, K = 2,
    16 cores), the same threads for both training rules."""
    profile = yaml.safe_load((ROOT / "profiles/local/config.yaml").read_text())
    assert profile["resources"] == ["gpu=2"] and profile["cores"] == "all"
    assert profile["set-threads"] == {"train_rl": 8, "train_classifier": 8}
    jobs = plan(fresh, "--profile", "profiles/local", "--configfile", "presets/smoke.yaml")
    assert count(jobs)["train_rl"] == 4


def sbatch_flags(threads: int, **resources) -> str:
    """The sbatch command line snakemake-executor-plugin-slurm builds for a job, from the
    plugin's own code (its dry run does not print it)."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(resources=Resources(resources), threads=threads)
    params = dict(run_uuid="ID", slurm_logfile="LOG", comment_str="C", account="-A acct",
                  partition="-p part", workdir=None)
    return get_submit_command(job, params) + set_gres_string(job)


def test_slurm_profile_requests_what_the_rules_say(fresh):
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["default-resources"]["slurm_account"].startswith("EDIT_ME")
    for rule in ("train_rl", "train_classifier"):
        res = profile["set-resources"][rule]
        assert res["slurm_partition"].startswith("EDIT_ME")
        # cores follow the rule's threads; GPUs, runtime and memory are the rule's
        assert not {"cpus_per_gpu", "cpus_per_task", "gpu", "gres", "runtime", "mem_mb"} & set(res)
    rules = set(re.findall(r"^rule (\w+):", "\n".join(
        p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk")), flags=re.M))
    assert set(profile["set-resources"]) <= rules
    # The executor plugin loads and the grid plans under it; GPU jobs say gpu=1 and take
    # runtime/mem_mb from config (per suite / dataset kind).
    proc = snakemake(fresh, "-n", "--profile", "profiles/slurm")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"train_rl\s+96", out)
    res = [dict(kv.split("=", 1) for kv in line.split(", "))
           for line in re.findall(r"^\s+resources: (.*)$", out, flags=re.M)]
    atari = [r for r in res if r.get("runtime") == "1440"]
    assert len(atari) == 7 * 4 * 3
    assert all(r["gpu"] == "1" and r["mem_mb"] == "16000" and "cpus_per_gpu" not in r
               and r["slurm_partition"] == "EDIT_ME_gpu_partition" for r in atari)
    # The flags the README/profile quote, built by the plugin from those resources.
    assert sbatch_flags(8, gpu=1, runtime=1440, mem_mb=16000).endswith(
        "-t 1440 --mem 16000 --ntasks-per-gpu=1 --cpus-per-task=8 --gpus=1")
    cpu = sbatch_flags(1, gpu=0, runtime=30, mem_mb=4000)
    assert cpu.endswith("-t 30 --mem 4000 --ntasks=1 --cpus-per-task=1") and "gpu" not in cpu
    assert sbatch_flags(8, gpu=0, gres="shard:1", runtime=1440, mem_mb=16000).endswith(
        "--ntasks=1 --cpus-per-task=8 --gres=shard:1")
    # SIGTERM 120 s before the time limit, so that a trainer checkpoints and stops cleanly.
    for rule in ("train_rl", "train_classifier"):
        extra = profile["set-resources"][rule]["slurm_extra"]
        flags = sbatch_flags(8, gpu=1, runtime=1440, mem_mb=16000, slurm_extra=extra)
        assert " --signal=TERM@120" in flags, flags


# gpu_slot.py's claims (K jobs per GPU, UUIDs, CUDA_VISIBLE_DEVICES, cpu jobs): tests/test_gpu_slot.py


def test_make_runs_from_a_checkout_whose_path_has_spaces(tmp_path):
    """The Makefile quotes its paths: in a checkout under "sp ace/scope loss", `make demo`
    (dry run: the same command line, planned) and `make plan` work."""
    dest = tmp_path / "sp ace" / "scope loss"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")  # `-o setup`: the venv as it is
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    demo = subprocess.run(["make", "-o", "setup", "demo", "SNAKEMAKE_ARGS=--dry-run"],
                          cwd=dest, capture_output=True, text=True, env=env, timeout=600)
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out[-3000:]
    assert re.search(r"train_rl\s+36", out) and "Demo done" in out, out[-3000:]
    plan_ = subprocess.run(["make", "-o", "setup", "plan",
                            "CONFIGS=config.yaml presets/demo.yaml"], cwd=dest,
                           capture_output=True, text=True, env=env, timeout=600)
    assert plan_.returncode == 0, (plan_.stdout + plan_.stderr)[-3000:]
    assert "Cost plan of config.yaml + presets/demo.yaml" in plan_.stdout
    assert "60 training jobs" in plan_.stdout, plan_.stdout


def job_stats(out: str) -> dict[str, int]:
    """Snakemake's "Job stats" table: {rule: count}."""
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_make_passes_two_overlays_as_one_configfile_like_snakemake(tmp_path):
    """`make grid OVERLAYS="a b"` and `make plan CONFIGS="a b"` launch and price the grid of
    Snakemake's own `--configfile a b` (smoke + a one-line overlay: 16 jobs), never the last
    overlay alone over config.yaml (the paper grid)."""
    wf = copy_workflow(tmp_path / "wf")
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(ROOT / name, wf / name)
    shutil.copytree(ROOT / "benchmarks/rates", wf / "benchmarks/rates")
    (wf / "one.yaml").write_text("rl: {seeds: [1, 2]}\n")
    own = snakemake(wf, "-n", "--configfile", "presets/smoke.yaml", "one.yaml")
    assert own.returncode == 0, (own.stdout + own.stderr)[-3000:]
    expected = job_stats(own.stdout + own.stderr)
    assert expected["train_rl"] == 8 and expected["train_classifier"] == 4, expected
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    make = ["make", "-s", "-o", "setup", f"VENV={BIN.parent}"]
    run = subprocess.run([*make, "grid", "OVERLAYS=presets/smoke.yaml one.yaml", "G=1",
                          "SNAKEMAKE_ARGS=--dry-run"], cwd=wf, capture_output=True, text=True,
                         env=env, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert job_stats(out) == expected, out[-3000:]
    priced = subprocess.run([*make, "plan", "CONFIGS=config.yaml presets/smoke.yaml one.yaml",
                             "G=1"], cwd=wf, capture_output=True, text=True, env=env,
                            timeout=600)
    assert priced.returncode == 0, (priced.stdout + priced.stderr)[-3000:]
    assert "config.yaml + presets/smoke.yaml + one.yaml" in priced.stdout, priced.stdout
    assert f"{expected['train_rl'] + expected['train_classifier']} training jobs" in \
        priced.stdout, priced.stdout
    assert "disk: " in priced.stdout and "once the grid is done" in priced.stdout


def test_make_grid_names_the_file_and_line_of_an_overlay_yaml_error(tmp_path):
    """Snakemake reads --configfile overlays before the Snakefile and says only "Config file
    is not valid JSON or YAML"; `make grid OVERLAYS=...` checks them first, naming both."""
    bad = tmp_path / "sweeps.yaml"
    bad.write_text("rl:\n  ppo:\n    learning_rate: [1, 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    run = subprocess.run(["make", "-s", "-o", "setup", "grid", f"OVERLAYS={bad}",
                          "SNAKEMAKE_ARGS=--dry-run"], cwd=ROOT, capture_output=True,
                         text=True, env=env, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert f"{bad}:4:1: not valid YAML" in out, out
    assert "Building DAG" not in out and "Traceback" not in out, out
