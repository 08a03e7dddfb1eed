"""scopeloss.grid: overlay merging, per-cell hyperparameters, name checks, and the
agreement of config.yaml / the schema with the trainers' own key sets (docs/CONTRACT.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from scopeloss import grid
from scopeloss import registry
from cli import exit_code

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


@pytest.fixture(scope="module")
def paper():
    return grid.load_config(ROOT / "config.yaml")


def validate(cfg):
    jsonschema.Draft202012Validator(SCHEMA).validate(cfg)


# ----------------------------------------------------------------------------- merging
def test_merge_maps_key_by_key_and_replaces_lists():
    base = {"a": {"x": 1, "y": [1, 2, 3], "z": {"p": 1, "q": 2}}, "b": [1, 2]}
    over = {"a": {"y": [9], "z": {"q": 5}}, "c": None}
    merged = grid.merge(base, over)
    assert merged == {"a": {"x": 1, "y": [9], "z": {"p": 1, "q": 5}}, "b": [1, 2], "c": None}
    assert base["a"]["y"] == [1, 2, 3]  # inputs untouched


def test_presets_are_overlays_of_the_paper_grid(paper):
    demo = grid.load_config(ROOT / "config.yaml", ROOT / "presets/demo.yaml")
    # lists replace ...
    assert demo["rl"]["envs"] == ["MinAtarBreakout", "MinAtarSeaquest", "MinAtarSpaceInvaders"]
    assert demo["classification"]["datasets"] == ["numbers_lt"]
    # ... mappings merge: the demo sets Breakout's budget, the rest stays declared
    breakout = grid.rl_cell(demo, "MinAtarBreakout", "scope")
    assert breakout["ppo"]["total_steps"] == 100_000 and breakout["env"]["sticky_action_prob"] == 0.1
    assert breakout["ppo"]["lr"] == grid.rl_cell(paper, "Pong", "scope")["ppo"]["lr"] == 1.0e-4
    plain = grid.classification_cell(demo, "numbers_lt", "plain", "ce")["experiment"]
    assert (plain["optimizer"], plain["model"], plain["epochs"]) == ("adam", "resnet18", 15)
    for path in ("config.yaml", "presets/demo.yaml", "presets/smoke.yaml", "presets/minatar.yaml"):
        cfg = grid.load_config(ROOT / "config.yaml", ROOT / path)
        validate(cfg)
        grid.check_config(cfg)


def test_every_preset_passes_the_start_up_checks_in_the_overlays_it_names():
    """Each preset, over config.yaml and after the presets its header says it overlays, is
    what the workflow accepts: schema, names and every cell resolved (grid.check_files)."""
    import re

    for preset in sorted((ROOT / "presets").glob("*.yaml")):
        named = re.findall(r"presets/[\w.]+\.yaml", preset.read_text().split("\n\n")[0])
        before = [ROOT / p for p in dict.fromkeys(named) if ROOT / p != preset]
        grid.check_files(ROOT / "config.yaml", *before, preset,
                         schema=ROOT / "workflow/schemas/config.schema.yaml")


# ----------------------------------------------------------------------------- the paper grid
def test_paper_grid_matches_the_paper(paper):
    rl, cl = paper["rl"], paper["classification"]
    assert rl["envs"] == ["Pong", "Breakout", "Asterix", "Seaquest", "Venture", "Gravitar",
                          "MontezumaRevenge", "StarPilot"]
    assert rl["losses"] == ["policy", "policy_entropy", "scope", "focal"]
    assert len(grid.rl_runs(paper)) == 8 * 4 * 3
    ppo = grid.rl_cell(paper, "Pong", "policy")["ppo"]  # Table 3
    assert (ppo["lr"], ppo["gamma"], ppo["gae_lambda"], ppo["vf_coef"]) == (1e-4, 0.999, 0.95, 0.5)
    # Table 3's alphas: the losses' registered defaults (config.yaml overrides none)


    assert rl["loss_specs"] == {} and rl["candidate"] == "scope"
    assert {k: registry.check_params("ppo", k, rl["loss_specs"].get(k)) for k in rl["losses"]} == {
        "policy": {}, "policy_entropy": {"alpha": 0.01}, "scope": {"alpha": 0.01}, "focal": {"alpha": 2.0}}
    star = grid.rl_cell(paper, "StarPilot", "policy")["env"]
    assert (star["suite"], star["distribution_mode"], star["num_levels"]) == ("procgen", "hard", 500)
    assert all(grid.rl_cell(paper, e, "policy")["env"]["repeat_action_probability"] == 0.25
               for e in rl["envs"][:7])
    assert cl["datasets"] == ["caltech256"] and cl["experiments"][:2] == ["plain", "augmented"]
    assert set(cl["losses"]) == {"pel", "scope", "focal", "ce", "weighted_ce", "balanced_softmax"}
    plain, aug = (grid.classification_cell(paper, "caltech256", e, "ce")["experiment"]
                  for e in ("plain", "augmented"))
    assert (plain["model"], plain["optimizer"], plain["lr"], plain["augment"]) == (
        "resnet101", "adam", 1e-3, False)
    assert (aug["optimizer"], aug["lr"], aug["schedule"], aug["epochs"], aug["augment"]) == (
        "sgd", 1e-2, "cosine", 100, True)
    assert aug["augmentation"]["color"] == [1.0, 0.3] and aug["augmentation"]["flip_p"] == 0.5
    assert cl["loss_specs"] == {} and cl["candidate"] == "scope"
    assert registry.check_params("supervised", "pel", None) == {"alpha": 8e-6}  # Table 4
    assert registry.check_params("supervised", "focal", None) == {"gamma": 2.0}


def test_config_yaml_holds_the_grid_and_restates_no_declared_value():
    """One home per value: config.yaml names the grid; every hyperparameter and run setting
    is declared once in scopeloss.params (with its source, listed in docs/parameters.md)."""
    from scopeloss import params

    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    rl, cl = raw["rl"], raw["classification"]
    assert rl["ppo"] == rl["run"] == cl["run"] == {}
    assert cl["dataset_specs"] == cl["experiment_specs"] == {}
    assert not set(rl["env_specs"]) & set(params.ENV_TABLE)  # only envs that are not built in
    docs = (ROOT / "docs/parameters.md").read_text()
    for key, declaration in params.PPO.items():
        assert declaration.source, f"params.PPO[{key!r}] without its source"
        assert f"`{key}`" in docs


# ----------------------------------------------------------------------------- cells
def test_rl_cell_applies_env_overrides_and_separates_env_from_ppo_keys(paper):
    pong = grid.rl_cell(paper, "Pong", "scope")
    star = grid.rl_cell(paper, "StarPilot", "focal")
    assert set(pong) == {"env", "ppo", "loss"}
    # a cell holds every loss parameter, the registered default where the config sets none
    assert pong["loss"] == {"alpha": 0.01} and star["loss"] == {"alpha": 2.0}
    edited = grid.merge(paper, {"rl": {"loss_specs": {"scope": {"alpha": 0.02},
                                                      "focal": {"alpha": None}}}})
    assert grid.rl_cell(edited, "Pong", "scope")["loss"] == {"alpha": 0.02}
    assert grid.rl_cell(edited, "Pong", "focal") == grid.rl_cell(paper, "Pong", "focal")
    # a value written out equal to its default is the same cell: it reruns nothing
    written = grid.merge(paper, {"rl": {"ppo": {"lr": 1e-4}, "env_specs": {"Pong": {"frameskip": 4}},
                                        "loss_specs": {"scope": {"alpha": 0.01}}}})
    assert grid.rl_cell(written, "Pong", "scope") == pong
    assert pong["env"] == {"suite": "atari", "game": "pong", "repeat_action_probability": 0.25,
                           "frameskip": 4, "noop_max": 30, "episodic_life": False,
                           "max_episode_steps": 27000}
    assert set(pong["ppo"]) == set(grid.PPO_KEYS)
    assert pong["ppo"]["num_envs"] == 8 and star["ppo"]["num_envs"] == 64
    assert star["ppo"]["total_steps"] == 25_000_000 and pong["ppo"]["total_steps"] == 10_000_000
    assert not set(star["env"]) & set(grid.PPO_KEYS)  # overrides went into ppo, not env
    assert star["ppo"]["lr"] == 1e-4  # not overridden: the shared value


def test_cells_are_canonical_json_with_sorted_keys(paper):
    paper = grid.merge(paper, {"rl": {"ppo": {"lr": 2e-4, "gamma": 0.99},
                                      "env_specs": {"Pong": {"frameskip": 3, "noop_max": 5}}}})
    shuffled = copy.deepcopy(paper)
    shuffled["rl"]["ppo"] = dict(reversed(list(shuffled["rl"]["ppo"].items())))
    shuffled["rl"]["env_specs"]["Pong"] = dict(reversed(list(paper["rl"]["env_specs"]["Pong"].items())))
    a = grid.cell_json(grid.rl_cell(paper, "Pong", "scope"))
    b = grid.cell_json(grid.rl_cell(shuffled, "Pong", "scope"))
    assert a == b and " " not in a
    assert list(json.loads(a)) == ["env", "loss", "ppo"]
    assert list(json.loads(a)["ppo"]) == sorted(grid.PPO_KEYS)


def test_one_cell_edit_changes_only_that_cells_hyperparameters(paper):
    edited = grid.merge(paper, {"rl": {"env_specs": {"Pong": {"total_steps": 2048}}}})
    for env in paper["rl"]["envs"]:
        for loss in paper["rl"]["losses"]:
            same = grid.rl_cell(paper, env, loss) == grid.rl_cell(edited, env, loss)
            assert same == (env != "Pong"), (env, loss)
    edited = grid.merge(paper, {"classification": {"experiment_specs": {"plain": {"lr": 0.5}}}})
    for exp in ("plain", "augmented"):
        same = (grid.classification_cell(paper, "caltech256", exp, "ce")
                == grid.classification_cell(edited, "caltech256", exp, "ce"))
        assert same == (exp == "augmented")


def test_classification_cell(paper):
    cell = grid.classification_cell(paper, "caltech256", "plain", "pel")
    assert cell["loss"] == {"alpha": 8e-6}  # Table 4, the registered default
    assert cell["dataset"]["kind"] == "caltech256" and cell["experiment"]["lr"] == 1e-3
    edited = grid.merge(paper, {"classification": {"loss_specs": {"focal": {"gamma": 1.0}}}})
    assert grid.classification_cell(edited, "caltech256", "augmented", "focal")["loss"] == {
        "gamma": 1.0}
    with pytest.raises(grid.ConfigError, match="classification.loss_specs.focal.alpha: loss "
                       "'focal' takes no parameter 'alpha' \\(its parameters: gamma\\)"):
        grid.check_config(grid.merge(paper, {"classification": {"loss_specs": {
            "focal": {"alpha": 1.0}}}}))


def test_cells_are_accepted_by_the_trainers_resolvers(paper):
    """The --hparams the workflow passes resolve without error in both trainers, and the
    values the trainers end up with are the config's."""
    from scopeloss.classify import config as ccfg
    from scopeloss.rl import config as rcfg

    for cfg in (paper, grid.load_config(ROOT / "config.yaml", ROOT / "presets/demo.yaml")):
        for env in cfg["rl"]["envs"] + ["CartPole"]:
            cell = grid.rl_cell(cfg, env, "scope")
            resolved = rcfg.resolve(env, "scope", json.loads(grid.cell_json(cell))).to_json()
            for section in ("env", "ppo"):
                for key, value in cell[section].items():
                    if value is not None:  # null = the trainer derives it (eval_start_level)
                        assert resolved[section][key] == value, (env, section, key)
        for ds in ("caltech256", "digits_lt"):
            for exp in cfg["classification"]["experiments"]:
                cell = grid.classification_cell(cfg, ds, exp, "scope")
                resolved = ccfg.resolve(ds, exp, "scope", json.loads(grid.cell_json(cell))).to_json()
                for key, value in cell["experiment"].items():
                    if key != "augmentation":
                        assert resolved["experiment"][key] == value, (ds, exp, key)
                assert resolved["loss"] == {**registry.get("supervised", "scope").params, **cell["loss"]}


def test_key_sets_agree_with_the_contract_and_the_loss_library():
    from scopeloss import losses, registry

    assert losses.PPO_LOSSES == registry.names("ppo")[:6]
    assert set(grid.PPO_KEYS) == set(SCHEMA["properties"]["rl"]["properties"]["ppo"]["properties"])
    # loss names: the schema checks their shape, the registry (which a user's module
    # extends) their existence; the schema's description lists the built-ins
    for half, kind in (("rl", "ppo"), ("classification", "supervised")):
        props = SCHEMA["properties"][half]["properties"]
        assert props["losses"]["items"] == {"type": "string", "pattern": registry.NAME.pattern}
        assert ", ".join(registry.names(kind)) in props["losses"]["description"]


# ----------------------------------------------------------------------------- bad config
@pytest.mark.parametrize(
    "overlay, message",
    [
        ({"rl": {"envs": ["Pongg"]}}, "config key rl.envs: unknown name 'Pongg'"),
        ({"classification": {"datasets": ["imagenet"]}},
         "config key classification.datasets: unknown name 'imagenet'"),
        ({"classification": {"experiments": ["mixup"]}},
         "config key classification.experiments: unknown name 'mixup'"),
        ({"rl": {"losses": ["scope", "entropy"]}}, "config key rl.losses: unknown PPO policy loss 'entropy'"),
        ({"classification": {"losses": ["hinge"]}},
         "config key classification.losses: unknown supervised loss 'hinge'"),
        ({"rl": {"resources": {"procgen": None}}}, "config key rl.resources: no entry for suite"),
    ],
)
def test_check_config_names_the_key_and_the_allowed_values(paper, overlay, message):
    cfg = grid.merge(paper, overlay)
    if overlay.get("rl", {}).get("resources"):
        del cfg["rl"]["resources"]["procgen"]
    with pytest.raises(grid.ConfigError) as err:
        grid.check_config(cfg)
    assert message in str(err.value)
    if "unknown name" in message:
        assert "allowed: " in str(err.value)


@pytest.mark.parametrize(
    "overlay, message",
    [
        ({"rl": {"ppo": {"total_steps": -5}}},
         "invalid config key rl.ppo.total_steps: -5 is less than or equal to the minimum of 0"),
        ({"rl": {"env_specs": {"Pong": {"total_steps": 0}}}},
         "invalid config key rl.env_specs.Pong.total_steps: 0 is less than or equal"),
        ({"classification": {"experiment_specs": {"plain": {"epochs": -1}}}},
         "invalid config key classification.experiment_specs.plain.epochs: -1"),
        ({"classification": {"experiment_specs": {"plain": {"lr": "fast"}}}},
         "invalid config key classification.experiment_specs.plain.lr: 'fast' is not of type 'number'"),
        ({"rl": {"seeds": [1, "two"]}}, "invalid config key rl.seeds[1]: 'two' is not of type 'integer'"),
        ({"rl": {"losses": ["en tropy"]}}, "invalid config key rl.losses[0]: 'en tropy' does not match"),
        ({"rl": {"ppo": {"learning_rate": 1}}}, "invalid config key rl.ppo: unknown key(s) learning_rate; allowed: total_steps, "),
        ({"rl": {"env_specs": {"Pong": {"suite": "mujoco"}}}},
         "invalid config key rl.env_specs.Pong.suite: 'mujoco' is not one of"),
    ],
)
def test_schema_errors_name_the_key(paper, overlay, message):
    cfg = grid.merge(paper, overlay)
    with pytest.raises(jsonschema.ValidationError) as err:
        validate(cfg)
    assert grid.describe_validation_error(RuntimeError("wrapped", err.value)).startswith(message)


def test_unknown_names_in_cells_are_errors(paper):
    with pytest.raises(grid.ConfigError, match="rl.env_specs: unknown name 'Atlantis'"):
        grid.rl_cell(paper, "Atlantis", "scope")
    with pytest.raises(grid.ConfigError, match="unknown PPO policy loss 'ce'"):
        grid.rl_cell(paper, "Pong", "ce")
    with pytest.raises(grid.ConfigError, match="classification.experiment_specs: unknown name"):
        grid.classification_cell(paper, "caltech256", "mixup", "ce")


# ----------------------------------------------------------------------------- run settings
def test_run_settings_are_apart_from_every_cell(paper):
    """Device, compile, threads, workers, checkpoint cadence and cache location are run
    settings: in rl.run / classification.run, never in a cell's hyperparameters."""
    # what the config writes; the trainers apply the declared defaults (docs/parameters.md)
    assert grid.rl_run_settings(paper) == grid.classification_run_settings(paper) == {}
    cell = grid.rl_cell(paper, "Pong", "scope")
    assert not set(cell["ppo"]) & set(grid.RL_RUN_KEYS)
    ccell = grid.classification_cell(paper, "caltech256", "plain", "scope")
    assert not set(ccell["experiment"]) & set(grid.CLASSIFICATION_RUN_KEYS)
    assert not set(ccell["dataset"]) & set(grid.CLASSIFICATION_RUN_KEYS)
    edited = grid.merge(paper, {"rl": {"run": {"device": "cpu", "checkpoint_every": 7}},
                                "classification": {"run": {"num_workers": 0}}})
    for env in paper["rl"]["envs"]:
        assert grid.rl_cell(edited, env, "scope") == grid.rl_cell(paper, env, "scope")
    assert grid.classification_cell(edited, "caltech256", "plain", "ce") == \
        grid.classification_cell(paper, "caltech256", "plain", "ce")


def test_gpu_use_follows_the_device_and_the_suite(paper):
    assert grid.rl_uses_gpu(paper, "Pong") and grid.rl_uses_gpu(paper, "StarPilot")
    assert not grid.rl_uses_gpu(paper, "CartPole")  # auto = cpu for Gymnasium envs
    cpu = grid.merge(paper, {"rl": {"run": {"device": "cpu"}},
                             "classification": {"run": {"device": "cpu"}}})
    assert not grid.rl_uses_gpu(cpu, "Pong") and not grid.classification_uses_gpu(cpu)
    assert grid.classification_uses_gpu(paper)


@pytest.mark.parametrize("overlay, where", [
    ({"rl": {"ppo": {"device": "cpu"}}}, "rl.ppo.device"),
    ({"rl": {"env_specs": {"StarPilot": {"checkpoint_every": 5}}}},
     "rl.env_specs.StarPilot.checkpoint_every"),
    ({"classification": {"experiment_specs": {"plain": {"num_workers": 0}}}},
     "classification.experiment_specs.plain.num_workers"),
    ({"classification": {"dataset_specs": {"caltech256": {"cache_dir": "/tmp"}}}},
     "classification.dataset_specs.caltech256.cache_dir"),
])
def test_a_run_setting_among_the_hyperparameters_says_where_it_moved(paper, overlay, where):
    cfg = grid.merge(paper, overlay)
    with pytest.raises(grid.ConfigError) as err:
        grid.check_run_settings_placement(cfg)
    section = where.split(".")[0]
    key = where.rsplit(".", 1)[1]
    assert f"config key {where}: a run setting" in str(err.value)
    assert f"set it as {section}.run.{key} instead" in str(err.value)


# ----------------------------------------------------------------------------- YAML syntax
def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "overlay.yaml"
    bad.write_text("rl:\n  envs: [Pong\n  seeds: [1]\n")
    with pytest.raises(grid.ConfigError, match=rf"{bad}:3:8: not valid YAML: expected ','"):
        grid.load_config(ROOT / "config.yaml", bad)
    # The CLI a user runs on an overlay before a run (Snakemake's own message names neither).
    assert exit_code(grid.main, ["check", str(bad), "--base", str(ROOT / "config.yaml"),
                      "--schema", str(ROOT / "workflow/schemas/config.schema.yaml")]) == 2
    assert f"{bad}:3:8" in capsys.readouterr().err
    assert grid.main(["check", str(ROOT / "presets/demo.yaml"), "--base",
                      str(ROOT / "config.yaml"), "--schema",
                      str(ROOT / "workflow/schemas/config.schema.yaml")]) == 0
    assert "36 RL runs, 24 classifier runs" in capsys.readouterr().out


def test_resampling_experiments_skip_the_losses_that_correct_for_counts():
    """No double correction: plain_balanced (class-balanced batches) runs every loss but
    weighted_ce and balanced_softmax, which already correct for the natural counts."""
    cells = grid.classification_runs(grid.load_config(ROOT / "config.yaml"))
    balanced = {l for d, x, l, s in cells if x == "plain_balanced"}
    assert balanced == {"pel", "scope", "focal", "ce"}
    assert {l for d, x, l, s in cells if x == "plain"} >= {"weighted_ce", "balanced_softmax"}
    assert len(cells) == 66


# ----------------------------------------------------------------------------- one home
def test_generated_schema_and_parameter_docs_are_up_to_date():
    """The schema and docs/parameters.md are generated from scopeloss.params: regenerate
    with `make generated`."""
    from scopeloss import generate

    assert (ROOT / "workflow/schemas/config.schema.yaml").read_text() == generate.schema_yaml()
    assert (ROOT / "docs/parameters.md").read_text() == generate.parameters_markdown() + "\n"


def test_every_resolved_key_is_declared_and_checked_by_its_declaration():
    from scopeloss import params
    from scopeloss.classify import config as ccfg
    from scopeloss.rl import config as rcfg

    for env in ("Pong", "StarPilot", "MinAtarBreakout", "CartPole-v1"):
        hp = rcfg.resolve(env, "scope").to_json()
        suite = hp["env"]["suite"]
        assert set(hp["ppo"]) == set(params.PPO)
        assert set(hp["env"]) - {"suite"} == set(params.RL_ENV[suite])
    hp = ccfg.resolve("digits_lt", "augmented_cuda", "scope").to_json()
    assert set(hp["experiment"]) == set(params.CL_EXPERIMENT) | set(params.CL_SUBSECTIONS)
    # one declaration decides: a changed range changes what both the trainer and the schema accept
    assert params.PPO["gamma"].schema()["exclusiveMinimum"] == 0
    with pytest.raises(grid.ConfigError, match=r"ppo.gamma must be a finite number in \(0, 1\]"):
        rcfg.resolve("Pong", "scope", {"ppo": {"gamma": 0}})


@pytest.mark.parametrize("overlay, message", [
    ({"rl": {"ppo": {"lr": float("nan")}}}, "ppo.lr must be a finite number > 0, got nan"),
    ({"classification": {"experiment_specs": {"plain": {"lr": float("inf")}}}},
     "experiment.lr must be a finite number > 0, got inf"),
    ({"rl": {"env_specs": {"Pong": {"total_steps": 512}}}},
     "ppo.total_steps must be at least one rollout"),
    ({"classification": {"dataset_specs": {"caltech256": {"val_fraction": 0.5,
                                                          "test_fraction": 0.6}}}},
     "must sum to less than 1"),
    ({"rl": {"env_specs": ["Pong"]}}, "invalid config key rl.env_specs: ['Pong'] is not of type"),
])
def test_values_a_job_would_reject_stop_the_check_before_any_job(tmp_path, overlay, message):
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    with pytest.raises(grid.ConfigError) as info:
        grid.check_files(ROOT / "config.yaml", path,
                         schema=ROOT / "workflow/schemas/config.schema.yaml")
    assert message in str(info.value)


def test_the_start_up_check_of_every_cell_imports_no_torch_or_env_package():
    """The Snakefile runs it in the user's Snakemake environment, which need not have torch."""
    import subprocess
    import sys

    code = ("import sys; from scopeloss import grid; "
            "grid.check_cells(grid.load_config('config.yaml', 'presets/demo.yaml')); "
            "print(sorted(m for m in ('torch', 'gymnasium', 'ale_py', 'procgen', 'minatar') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
