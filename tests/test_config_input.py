"""Bad config input named everywhere (issue 29): unknown keys with the allowed ones, ranges
in words, a key given twice, an empty overlay, scientific notation read as a number as in
--set, and a missing config.yaml named as such under Snakemake."""

import jsonschema
import pytest

from scopeloss import grid
from scopeloss.overrides import parse_set

from workflow_helpers import ROOT, validate
from workflow_helpers import copy_workflow, snakemake
from cli import exit_code


@pytest.fixture(scope="module")
def paper():
    return grid.load_config(ROOT / "config.yaml")


@pytest.mark.parametrize("overlay, message", [
    ({"rl": {"ppo": {"lrr": 1}}},
     "invalid config key rl.ppo: unknown key(s) lrr; allowed: total_steps, num_envs"),
    ({"rl": {"run": {"torch_threads": 0}}},
     "invalid config key rl.run.torch_threads: must be null or an integer > 0, got 0"),
    ({"rl": {"run": {"checkpoint_every": -1}}},
     "invalid config key rl.run.checkpoint_every: must be null or an integer > 0, got -1"),
    ({"classification": {"run": {"num_workers": -2}}},
     "invalid config key classification.run.num_workers: must be null or an integer >= 0"),
    ({"rl": {"loss_specs": {"scope": {"alpha": "0.01"}}}},
     "invalid config key rl.loss_specs.scope.alpha: must be null or a number, got '0.01'"),
])
def test_schema_errors_say_what_is_allowed(paper, overlay, message):
    with pytest.raises(jsonschema.ValidationError) as err:
        validate(grid.merge(paper, overlay))
    assert grid.describe_validation_error(err.value).startswith(message), \
        grid.describe_validation_error(err.value)


def test_a_key_given_twice_names_file_and_line(tmp_path):
    bad = tmp_path / "twice.yaml"
    bad.write_text("rl:\n  seeds: [1]\n  seeds: [2]\n")
    with pytest.raises(grid.ConfigError, match=rf"{bad}:3:3: not valid YAML: key 'seeds' given "
                                               r"twice in one mapping \(first at line 2\)"):
        grid.read_yaml(bad)


def test_an_empty_overlay_is_rejected_by_the_check(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert exit_code(grid.main, ["check", str(empty), "--base", str(ROOT / "config.yaml"),
                      "--schema", str(ROOT / "workflow/schemas/config.schema.yaml")]) == 2
    assert f"{empty}: the file is empty" in capsys.readouterr().err


def test_scientific_notation_is_a_number_in_overlays_as_in_set(tmp_path):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("rl:\n  ppo:\n    total_steps: 1e6\n    lr: 3e-4\n")
    cfg = grid.load_config(ROOT / "config.yaml", overlay)
    assert cfg["rl"]["ppo"]["total_steps"] == 1e6 and cfg["rl"]["ppo"]["lr"] == 3e-4
    assert parse_set(["ppo.total_steps=1e6"]) == {"ppo": {"total_steps": 1e6}}
    validate(cfg)


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("input"))


def test_under_snakemake_an_overlay_with_1e5_plans_and_a_twice_given_key_is_named(wf):
    (wf / "sci.yaml").write_text("rl:\n  ppo:\n    total_steps: 1e5\n")
    proc = snakemake(wf, "-n", "--configfile", "presets/smoke.yaml", "sci.yaml")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (wf / "twice.yaml").write_text("rl:\n  seeds: [1]\n  seeds: [2]\n")
    proc = snakemake(wf, "-n", "--configfile", "presets/smoke.yaml", "twice.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "twice.yaml:3:3" in out and "given twice" in out, out[-3000:]
    assert "Traceback" not in out


def test_a_missing_config_yaml_is_named_whatever_overlays_follow(wf, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = snakemake(elsewhere, "-n", "-s", str(wf / "Snakefile"), "--configfile",
                     str(wf / "presets/smoke.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"config.yaml not found in {elsewhere}" in out, out[-3000:]
    assert "required property" not in out
