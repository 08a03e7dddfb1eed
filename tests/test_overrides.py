"""--hparams / --set parsing shared by both training CLIs."""

import json

import pytest

from scopeloss.overrides import load_hparams, parse_set


def test_inline_json_and_file(tmp_path):
    assert load_hparams('{"ppo": {"lr": 0.001}}') == {"ppo": {"lr": 0.001}}
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"experiment": {"epochs": 3}}))
    assert load_hparams(str(path)) == {"experiment": {"epochs": 3}}
    assert load_hparams(None) == {}
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        load_hparams("[1]")


def test_bad_hparams_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="neither a JSON object nor an existing file"):
        load_hparams(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="not valid JSON"):
        load_hparams('{"ppo": ')
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        load_hparams(str(tmp_path / "list.json"))


def test_set_parses_yaml_values_and_nested_keys():
    got = parse_set(["ppo.lr=3e-4", "env.episodic_life=true", "env.game=pong",
                     "experiment.augmentation.flip_p=0", "loss.alpha=null"])
    assert got == {"ppo": {"lr": 3e-4}, "env": {"episodic_life": True, "game": "pong"},
                   "experiment": {"augmentation": {"flip_p": 0}}, "loss": {"alpha": None}}


@pytest.mark.parametrize("item", ["lr=3", "ppo.lr", ".lr=1", "ppo.=1"])
def test_set_rejects_malformed_items(item):
    with pytest.raises(ValueError, match="expects section.key=value"):
        parse_set([item])


def test_run_settings_use_the_same_parser(tmp_path):
    from scopeloss.overrides import load_run

    assert load_run('{"device": "cpu", "torch_threads": 2}') == {"device": "cpu", "torch_threads": 2}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"compile": True}))
    assert load_run(str(path)) == {"compile": True}
    assert load_run(None) == {} and load_run("") == {}
    with pytest.raises(ValueError, match="--run must be a JSON object, got list"):
        load_run("[1]")
    with pytest.raises(ValueError, match="--run '.*missing.json' is neither a JSON object"):
        load_run(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="--run is not valid JSON"):
        load_run("{")
    assert parse_set(["run.device=cpu", "ppo.lr=1e-3"]) == {"run": {"device": "cpu"},
                                                            "ppo": {"lr": 1e-3}}


def test_set_with_a_value_that_is_not_yaml_names_the_item_and_raises_no_yaml_error():
    with pytest.raises(ValueError, match=r"--set 'ppo.lr=\[': the value '\[' is not valid YAML"):
        parse_set(["ppo.lr=["])
