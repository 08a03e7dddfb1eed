"""Shape rules the code keeps (issue 27): long argument lists travel as typed configs or
keywords, and the typed configs are the declarations."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

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


def test_the_typed_configs_are_the_declarations_and_refuse_a_misspelt_key():
    import pytest

    from scopeloss import params
    from scopeloss.rl import config as rl_config
    from scopeloss.typed_config import ExperimentConfig, PPOConfig
    from scopeloss.classify import config as cl_config

    hp = rl_config.resolve("CartPole-v1", "scope")
    ppo = PPOConfig.from_mapping(hp["ppo"], "ppo")
    assert {f.name for f in dataclasses.fields(ppo)} == set(params.PPO)
    assert ppo.batch_size == ppo.num_envs * ppo.num_steps
    with pytest.raises(dataclasses.FrozenInstanceError):
        ppo.lr = 1.0
    with pytest.raises(params.ConfigError, match="ppo: missing nothing, unknown lrate"):
        PPOConfig.from_mapping({**hp["ppo"], "lrate": 1.0}, "ppo")
    e = ExperimentConfig.from_mapping(
        cl_config.resolve("digits_lt", "augmented_cuda", "scope")["experiment"])
    assert e.cuda.enabled and e.augmentation.flip_p == 0.5


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
