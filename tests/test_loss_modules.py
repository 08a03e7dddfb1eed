"""A user's loss module (``loss_modules``): every bad module or name stops the start-up check
before any job, naming it — through ``python -m scopeloss.grid check`` (what the Snakefile
runs), ``snakemake -n`` itself, and the trainer CLIs' ``--loss-module``. The recipe that
runs a good module through the whole grid is in tests/test_workflow_run.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workflow_helpers import copy_workflow, snakemake

ROOT = Path(__file__).resolve().parents[1]
GOOD = '''
from scopeloss.losses import clipped_surrogate, float_log_probs, register_ppo_loss

@register_ppo_loss("my_pg", alpha=0.01, label="My PG")
def my_pg(logits, actions, old_logprob, advantages, *, clip_coef, alpha):
    log_p = float_log_probs(logits)
    l_clip, log_pi = clipped_surrogate(log_p, actions, old_logprob, advantages, clip_coef)
    return (-l_clip + alpha * log_pi.exp().pow(2) * log_pi).mean()
'''
CASES = {
    "missing": (None, "config key loss_modules: ext/mine.py: no such file (a path is relative "
                      "to the working directory"),
    "raises": ("import math\n\nx = 1 / 0\n", "config key loss_modules: ext/mine.py: failed to "
                                             "import (line 3): ZeroDivisionError: division by zero"),
    "syntax": ("def broken(:\n    pass\n", "config key loss_modules: ext/mine.py: failed to "
                                           "import (line 1): SyntaxError"),
    "no module": ("import no_such_package_here\n", "failed to import (line 1): "
                                                   "ModuleNotFoundError: No module named"),
    "twice": ("from scopeloss.losses import register_ppo_loss\n\n"
              "@register_ppo_loss('scope')\n"
              "def mine(logits, actions, old_logprob, advantages, *, clip_coef):\n    return 0\n",
              "PPO policy loss 'scope' registered twice: by scopeloss.losses (built-in) and by "),
    "signature": ("from scopeloss.losses import register_ppo_loss\n\n"
                  "@register_ppo_loss('my_pg', alpha=0.1)\n"
                  "def my_pg(logits, actions):\n    return 0\n",
                  "loss 'my_pg' (in "),
}


def check(tmp_path: Path, module: str | None, overlay: str) -> subprocess.CompletedProcess:
    (tmp_path / "ext").mkdir(exist_ok=True)
    if module is not None:
        (tmp_path / "ext/mine.py").write_text(module)
    (tmp_path / "over.yaml").write_text(overlay)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "scopeloss.grid", "check", "over.yaml",
                           "--base", str(ROOT / "config.yaml"),
                           "--schema", str(ROOT / "workflow/schemas/config.schema.yaml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_module_is_named_with_its_own_error(tmp_path, case):
    module, message = CASES[case]
    proc = check(tmp_path, module, "loss_modules: [ext/mine.py]\n")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    if case == "signature":
        assert "cannot be called as a PPO policy loss is, with (logits, actions, old_logprob, " \
               "advantages, *, clip_coef, alpha)" in proc.stderr


@pytest.mark.parametrize("overlay, message", [
    ("rl: {losses: [policy, my_gp]}", "config key rl.losses: unknown PPO policy loss 'my_gp'; "
                                      "registered: policy, policy_entropy, scope, focal, "
                                      "weighted_policy, resampled_policy, my_pg"),
    ("rl: {candidate: my_gp}", "config key rl.candidate: unknown PPO policy loss 'my_gp'"),
    ("rl: {loss_specs: {my_pg: {beta: 1}}}", "config key rl.loss_specs.my_pg.beta: loss 'my_pg' "
                                             "takes no parameter 'beta' (its parameters: alpha)"),
    ("classification: {losses: [ce, my_pg]}", "config key classification.losses: unknown "
                                              "supervised loss 'my_pg'"),
    ("loss_modules: ext/mine.py", "config key loss_modules must be a list of module paths or names"),
])
def test_a_misspelt_or_misused_name_is_named_with_the_registered_ones(tmp_path, overlay, message):
    text = overlay if overlay.startswith("loss_modules") else f"loss_modules: [ext/mine.py]\n{overlay}\n"
    proc = check(tmp_path, GOOD, text)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_good_module_passes_the_check(tmp_path):
    proc = check(tmp_path, GOOD, "loss_modules: [ext/mine.py]\nrl: {losses: [scope, my_pg], "
                                 "candidate: my_pg, loss_specs: {my_pg: {alpha: 0.5}}}\n")
    assert proc.returncode == 0, proc.stderr
    assert "ok: " in proc.stdout


def test_snakemake_stops_before_any_job_naming_the_module(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    (wf / "ext").mkdir()
    (wf / "ext/mine.py").write_text("import math\n\nx = 1 / 0\n")
    (wf / "over.yaml").write_text("loss_modules: [ext/mine.py]\n")
    proc = snakemake(wf, "-n", "--configfile", "presets/smoke.yaml", "over.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key loss_modules: ext/mine.py: failed to import (line 3): " \
           "ZeroDivisionError: division by zero" in out, out[-3000:]
    assert "rule train_rl" not in out and not (wf / "results").exists()


def test_trainer_cli_loads_a_module_and_names_a_bad_one(tmp_path):
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext/mine.py").write_text(GOOD)
    (tmp_path / "ext/bad.py").write_text("x = 1 / 0\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    base = [sys.executable, "-m", "scopeloss.rl.train", "--env", "CartPole-v1", "--seed", "1",
            "--set", "ppo.total_steps=512", "--set", "run.tensorboard=false"]
    proc = subprocess.run([*base, "--loss", "my_pg", "--out", "bad", "--loss-module",
                           "ext/bad.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert "--loss-module: ext/bad.py: failed to import (line 1): ZeroDivisionError" in proc.stderr
    proc = subprocess.run([*base, "--loss", "my_pg", "--out", "run", "--loss-module",
                           "ext/mine.py", "--set", "loss.alpha=0.5"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["loss"] == "my_pg" and summary["hparams"]["loss"] == {"alpha": 0.5}
    trainer, module = summary["code_fingerprint"].split("+")
    assert len(trainer) == len(module) == 16
    # a comment edit keeps the module's fingerprint; a code edit changes it
    from scopeloss import fingerprint, registry

    with registry.restored():
        os.chdir(tmp_path)
        try:
            registry.load_modules(["ext/mine.py"])
            assert fingerprint.cell_fingerprint("rl", "my_pg") == summary["code_fingerprint"]
            assert fingerprint.cell_fingerprint("rl", "scope") == trainer
            (tmp_path / "ext/mine.py").write_text("# a comment\n" + GOOD)
            assert fingerprint.cell_fingerprint("rl", "my_pg") == summary["code_fingerprint"]
            (tmp_path / "ext/mine.py").write_text(GOOD.replace("pow(2)", "pow(3)"))
            assert fingerprint.cell_fingerprint("rl", "my_pg") != summary["code_fingerprint"]
        finally:
            os.chdir(ROOT)
    assert "my_pg" not in registry.names("ppo")


def test_an_importable_module_name_works_too(tmp_path):
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg/__init__.py").write_text("")
    (tmp_path / "my_pkg/losses.py").write_text(textwrap.dedent(GOOD))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{tmp_path}"}
    (tmp_path / "over.yaml").write_text("loss_modules: [my_pkg.losses]\nrl: {losses: [my_pg]}\n")
    proc = subprocess.run([sys.executable, "-m", "scopeloss.grid", "check", "over.yaml",
                           "--base", str(ROOT / "config.yaml"),
                           "--schema", str(ROOT / "workflow/schemas/config.schema.yaml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "over.yaml").write_text("loss_modules: [my_pkg.nope]\n")
    proc = subprocess.run([sys.executable, "-m", "scopeloss.grid", "check", "over.yaml",
                           "--base", str(ROOT / "config.yaml"),
                           "--schema", str(ROOT / "workflow/schemas/config.schema.yaml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "my_pkg.nope: no such module" in proc.stderr, proc.stderr


NOT_A_MODULE = {"/etc/passwd": "not a .py file", "losses.txt": "not a .py file",
                "my-losses": "not a module name"}


@pytest.mark.parametrize("entry", list(NOT_A_MODULE))
def test_an_entry_that_is_no_python_module_is_one_line_naming_it(tmp_path, entry):
    """A path that is not a .py file, or a name that is not a module's, is named with what
    is allowed: by `grid check` (the Snakefile's check), Snakemake itself and both trainers."""
    (tmp_path / "losses.txt").write_text("not python\n")
    message = (f"{entry}: {NOT_A_MODULE[entry]}; a loss module is a .py file (a path "
               "relative to the working directory) or an importable module name")
    proc = check(tmp_path, None, f"loss_modules: [{entry}]\n")
    assert proc.returncode == 2 and f"config key loss_modules: {message}" in proc.stderr, \
        proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for trainer in (["scopeloss.rl.train", "--env", "CartPole-v1", "--loss", "scope"],
                    ["scopeloss.classify.train", "--dataset", "digits_lt", "--experiment",
                     "plain", "--loss", "ce"]):
        proc = subprocess.run([sys.executable, "-m", *trainer, "--seed", "1", "--out", "run",
                               "--loss-module", entry], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and f"--loss-module: {message}" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
    if entry == "losses.txt":
        wf = copy_workflow(tmp_path / "wf")
        (wf / "losses.txt").write_text("not python\n")
        (wf / "over.yaml").write_text(f"loss_modules: [{entry}]\n")
        proc = snakemake(wf, "-n", "--configfile", "presets/smoke.yaml", "over.yaml")
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and message in out and "Traceback" not in out, out[-3000:]
