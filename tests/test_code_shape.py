"""Shape rules the code keeps (issue 27): long argument lists travel as typed configs or
keywords, and the typed configs are the declarations."""

from __future__ import annotations

import ast
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

from scopeloss.config_keys import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src" / "scopeloss"


def test_no_function_takes_more_than_six_positional_parameters():
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.posonlyargs + node.args.args]
                if names[:1] in (["self"], ["cls"]):
                    names = names[1:]
                if len(names) > 6:
                    too_long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert not too_long, too_long


MAX_FILE_LINES, MAX_FUNCTION_LINES = 450, 60


def test_no_module_over_450_lines_and_no_function_over_60():
    """Rooms of a readable size (issue 37): a module that grows past 450 lines is split by
    job, a function past 60 lines into named steps."""
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text()
        if source.count("\n") > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(SRC)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: "
                                    f"{length} lines")
    assert not too_long, too_long


def test_every_name_the_workflow_reads_off_our_modules_exists():
    """The Snakefile and the rules call scopeloss's modules by attribute (``grid.rl_cell``);
    mypy does not read them, so a moved or renamed function is caught here, not at the next
    Snakemake start-up."""
    import importlib
    import re

    root = SRC.parents[1]
    aliases = {"grid": "scopeloss.grid", "fingerprint": "scopeloss.fingerprint",
               "registry": "scopeloss.registry", "lifecycle": "scopeloss.lifecycle"}
    missing, read = [], 0
    for path in [root / "Snakefile", *sorted((root / "workflow" / "rules").glob("*.smk"))]:
        text = path.read_text()
        for alias, module in aliases.items():
            names = set(re.findall(rf"(?<![\w.]){alias}\.([A-Za-z_]\w*)", text))
            read += len(names)
            missing += [f"{path.name}: {alias}.{n}" for n in sorted(names)
                        if not hasattr(importlib.import_module(module), n)]
    assert not missing, missing
    assert read > 20, f"only {read} names found: the test lost track of the workflow"


def test_the_typed_configs_are_the_declarations_and_refuse_a_misspelt_key():
    import pytest

    from scopeloss import params
    from scopeloss.rl import config as rl_config
    from scopeloss.params import ExperimentConfig, PPOConfig
    from scopeloss.classify import config as cl_config

    hp = rl_config.resolve("CartPole-v1", "scope").to_json()
    ppo = PPOConfig.from_mapping(hp["ppo"], "ppo")
    assert {f.name for f in dataclasses.fields(ppo)} == set(params.PPO)
    assert ppo.batch_size == ppo.num_envs * ppo.num_steps
    with pytest.raises(dataclasses.FrozenInstanceError):
        ppo.lr = 1.0
    with pytest.raises(ConfigError, match="ppo: missing nothing, unknown lrate"):
        PPOConfig.from_mapping({**hp["ppo"], "lrate": 1.0}, "ppo")
    e = ExperimentConfig.from_mapping(
        cl_config.resolve("digits_lt", "augmented_cuda", "scope").to_json()["experiment"])
    assert e.cuda.enabled and e.augmentation.flip_p == 0.5


def test_every_suite_and_dataset_kind_has_its_typed_section():
    import pytest

    from scopeloss import params
    from scopeloss.classify import config as cl_config
    from scopeloss.rl import config as rl_config
    from scopeloss.params import ENV_CONFIGS, DatasetConfig, EnvConfig

    for env in ("Breakout", "StarPilot", "CartPole-v1", "MinAtarBreakout"):
        section = rl_config.resolve(env, "scope", games=False).to_json()["env"]
        cfg = EnvConfig.of(section)
        assert type(cfg) is ENV_CONFIGS[section["suite"]] and dataclasses.asdict(cfg) == section
        assert list(section) == ["suite", *params.RL_ENV[section["suite"]]]
        assert EnvConfig.of(cfg) is cfg
    assert EnvConfig.of(rl_config.resolve("Breakout", "scope").env).frames_per_step == 4
    with pytest.raises(ConfigError, match="env: missing nothing, unknown noop"):
        EnvConfig.of({**rl_config.resolve("Pong", "scope").to_json()["env"], "noop": 3})
    with pytest.raises(ConfigError, match="env.suite must be one of atari, procgen"):
        EnvConfig.of({"suite": "arcade"})
    for dataset, given in [*((name, None) for name in cl_config.DATASETS),
                           ("my_list", {"kind": "image_list"})]:
        section = cl_config.resolve_dataset(dataset, given)
        cfg = DatasetConfig.of(section)
        assert dataclasses.asdict(cfg) == section
        assert {f.name for f in dataclasses.fields(cfg)} == {
            *params.CL_DATASET, *params.CL_DATASET_KIND[section["kind"]]}
    with pytest.raises(ConfigError, match="unknown max_per_clas "):
        DatasetConfig.of({**cl_config.resolve_dataset("digits_lt"), "max_per_clas": 3})


def test_the_benchmark_scripts_import_what_src_has():
    """A benchmark that still calls a renamed function fails here, not when it is next run
    (each ``--help`` imports the script's modules). The JAX yardstick needs jax and flax,
    which the lock leaves out."""
    import subprocess
    import sys

    bench = SRC.parents[1] / "benchmarks"
    broken = {}
    for script in sorted(bench.glob("*.py")):
        if script.name == "jax_yardstick.py":
            continue
        proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            broken[script.name] = proc.stderr.strip().splitlines()[-1:]
    assert not broken, broken


# --------------------------------------------------------------------------- type checker
def _mypy(src: Path) -> subprocess.CompletedProcess:
    """mypy as `make typecheck` runs it (pyproject.toml's settings and cache) on ``src``."""
    root = SRC.parents[1]
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(root / "pyproject.toml"),
         "--cache-dir", str(root / ".mypy_cache"), str(src)],
        capture_output=True, text=True, timeout=600, cwd=src.parent)


def test_the_type_checker_finds_a_misspelt_field_in_the_ppo_update(tmp_path):
    """What tests/test_code_shape.py's own AST checker caught before mypy ran in CI: a
    field of a typed section misspelt where the trainer reads it (and a nested one)."""
    copy = tmp_path / "scopeloss"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    update = copy / "rl" / "update.py"
    text = update.read_text()
    assert text.count("p.max_grad_norm") == 1
    update.write_text(text.replace("p.max_grad_norm", "p.max_grad_nrom"))
    augment = copy / "classify" / "augment.py"
    text = augment.read_text()
    assert "cfg.flip_p" in text
    augment.write_text(text.replace("cfg.flip_p", "cfg.flip_prob", 1))
    proc = _mypy(copy)
    assert proc.returncode == 1, proc.stdout
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, proc.stdout
    assert any('"PPOConfig" has no attribute "max_grad_nrom"' in e for e in errors), errors
    assert any('"AugmentationConfig" has no attribute "flip_prob"' in e for e in errors), errors


def test_each_trainer_cli_resolves_its_run_settings_once(tmp_path, monkeypatch):
    """The CLI resolves ``--run``/``--set run.*`` where they enter and hands the trainer a
    typed ``*RunConfig``, which the trainer uses as it is (a mapping it would resolve)."""
    from scopeloss.classify import config as cl_config
    from scopeloss.classify import train as cl_train
    from scopeloss.rl import config as rl_config
    from scopeloss.rl import ppo
    from scopeloss.rl import train as rl_train

    calls = []

    def counting(resolve):
        def resolve_run(*args, **kwargs):
            calls.append(resolve.__module__)
            return resolve(*args, **kwargs)
        return resolve_run

    monkeypatch.setattr(rl_train, "resolve_run", counting(rl_config.resolve_run))
    monkeypatch.setattr(ppo, "resolve_run", counting(rl_config.resolve_run))
    monkeypatch.setattr(cl_config, "resolve_run", counting(cl_config.resolve_run))
    assert rl_train.main(["--env", "CartPole-v1", "--loss", "scope", "--seed", "1",
                          "--out", str(tmp_path / "rl"), "--run", '{"torch_threads": 1}',
                          "--set", "run.tensorboard=false", "--set", "ppo.total_steps=512",
                          "--set", "ppo.num_envs=4", "--set", "ppo.num_steps=128"]) == 0
    assert cl_train.main(["--dataset", "digits_lt", "--experiment", "plain", "--loss", "scope",
                          "--seed", "1", "--out", str(tmp_path / "cl"),
                          "--set", f"dataset.root={tmp_path / 'data'}",
                          "--set", "run.torch_threads=1", "--set", "run.num_workers=0",
                          "--set", "run.tensorboard=false", "--set", "dataset.image_size=16",
                          "--set", "dataset.resize_size=16", "--set", "experiment.model=resnet18",
                          "--set", "experiment.epochs=1"]) == 0
    assert calls == ["scopeloss.rl.config", "scopeloss.classify.config"]
