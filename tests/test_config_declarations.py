"""Adding a hyperparameter is one edit: a field in its section of ``scopeloss/params.py``.
A copy of the package gets one new field and nothing else; the schema, the docs, the
resolver, the typed section and a trained run all carry it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scopeloss import config_keys, params

SRC = Path(__file__).resolve().parents[1] / "src"
NEW_FIELD = ('    probe_coef: float = positive(0.25, "a key added by a test", "tests", '
             'high=1)\n')


def _python(src: Path, *args: str, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}  # the copy, ahead of the editable install
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def edited_src(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(SRC / "scopeloss", src / "scopeloss",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = src / "scopeloss" / "params.py"
    text = path.read_text()
    anchor = '    bf16: bool = flag(True, "bf16 autocast on cuda (heads and losses stay float32)")\n'
    assert text.count(anchor) == 1
    path.write_text(text.replace(anchor, anchor + NEW_FIELD))  # the one edit
    return src


def test_one_new_field_reaches_the_schema_the_docs_and_the_resolver(edited_src):
    schema = _python(edited_src, "-m", "scopeloss.generate", "schema").stdout
    assert "probe_coef:" in schema and "a key added by a test" in schema
    docs = _python(edited_src, "-m", "scopeloss.generate", "docs").stdout
    assert "| `probe_coef` | `0.25` | a finite number in (0, 1] | tests |" in docs
    code = ("from scopeloss.rl.config import resolve\n"
            "from scopeloss.params import PPOConfig\n"
            "cell = resolve('CartPole-v1', 'scope', sets={'ppo': {'probe_coef': 0.5}})\n"
            "hp = cell.to_json()\n"
            "print(cell.ppo.probe_coef, PPOConfig.from_mapping(hp['ppo'], 'ppo').probe_coef)\n"
            "print(resolve('CartPole-v1', 'scope').ppo.probe_coef)\n")
    assert _python(edited_src, "-c", code).stdout.split() == ["0.5", "0.5", "0.25"]
    bad = _python(edited_src, "-c", code.replace("0.5}", "2}"), check=False)
    assert "ppo.probe_coef must be a finite number in (0, 1], got 2" in bad.stderr


def test_one_new_field_reaches_the_trainer_and_its_record(edited_src, tmp_path):
    out = tmp_path / "run"
    _python(edited_src, "-m", "scopeloss.rl.train", "--env", "CartPole-v1", "--loss", "policy",
            "--seed", "1", "--out", str(out), "--set", "ppo.total_steps=256",
            "--set", "ppo.num_envs=2", "--set", "ppo.num_steps=64",
            "--set", "ppo.probe_coef=0.75", "--set", "run.torch_threads=1",
            "--set", "run.tensorboard=false")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hparams"]["ppo"]["probe_coef"] == 0.75


def test_a_field_annotated_unlike_its_declaration_is_refused_at_import():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Section(config_keys.Section):
        steps: float = config_keys.positive_int(3, "an int annotated float")

    with pytest.raises(TypeError, match="Section.steps is annotated 'float' but declared "
                                        "'int': annotate it 'int'"):
        config_keys.declarations(Section)


def test_the_key_tables_are_read_off_the_sections():
    import dataclasses

    assert list(params.PPO) == [f.name for f in dataclasses.fields(params.PPOConfig)]
    assert params.CL_RUN["device"] is params.RL_RUN["device"]  # declared once, shared
    assert list(params.CL_DATASET_KIND["numbers_lt"]) == ["imbalance_ratio", "max_per_class"]
    assert params.CL_DATASET_KIND["numbers_lt"]["max_per_class"].high == 500
    assert params.CL_DATASET_KIND["digits_lt"]["max_per_class"].high == 174
    assert params.CL_DATASET_KIND["caltech256"] == {}
    assert params.RL_ENV["minatar"]["game"].choices[0] == "breakout"
    assert params.RL_ENV["gym"]["game"].choices == ()
