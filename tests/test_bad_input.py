"""Bad input named at start (issue 29): an --out that is the current directory, thread
counts beyond the machine's cores; nothing written."""

import os

import pytest

from scopeloss.classify import train as T
from scopeloss.rl import train as R
from cli import exit_code

RL = ["--env", "CartPole-v1", "--loss", "policy", "--seed", "1"]
CL = ["--dataset", "digits_lt", "--experiment", "plain", "--loss", "ce", "--seed", "1"]


def _rl(argv, capsys):
    with pytest.raises(SystemExit) as info:
        R.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("out", ["", ".", "./"])
def test_an_out_that_is_the_current_directory_is_refused(out, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "is the current directory" in _rl([*RL, "--out", out], capsys)
    assert exit_code(T.main, [*CL, "--out", out]) == 2
    assert "is the current directory" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_thread_counts_beyond_the_cores_are_named(tmp_path, capsys):
    big = (os.cpu_count() or 1) + 1
    err = _rl([*RL, "--out", str(tmp_path / "rl"), "--set", f"run.torch_threads={big}"], capsys)
    assert f"run.torch_threads is {big}, more than this machine's" in err
    err = _rl([*RL, "--out", str(tmp_path / "rl"), "--run", f'{{"env_threads": {big}}}'], capsys)
    assert "run.env_threads" in err
    for key in ("torch_threads",):
        assert exit_code(T.main, [*CL, "--out", str(tmp_path / "cl"), "--set", f"run.{key}={big}"]) == 2
        assert f"run.{key} is {big}, more than this machine's" in capsys.readouterr().err
    assert not (tmp_path / "rl").exists() and not (tmp_path / "cl").exists()


def test_a_caltech_root_without_the_images_is_named_and_left_uncreated(tmp_path, capsys):
    """`--set dataset.root=/nonexistent/x` for Caltech-256: one message saying where to put
    the archive; neither that folder nor any manifest or lock under it is created."""
    root = tmp_path / "nonexistent" / "x"
    code = exit_code(T.main, ["--dataset", "caltech256", "--experiment", "plain", "--loss", "ce",
                   "--seed", "1", "--out", str(tmp_path / "run"), "--set",
                   f"dataset.root={root}", "--run", '{"device": "cpu"}'])
    err = capsys.readouterr().err
    assert code != 0 and f"dataset.root: {root} does not exist, nor does its parent" in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "nonexistent").exists() and not (tmp_path / "run").exists()
    # the root there, the images not: where to put the archive; no run directory left
    root.mkdir(parents=True)
    code = exit_code(T.main, ["--dataset", "caltech256", "--experiment", "plain", "--loss", "ce",
                   "--seed", "1", "--out", str(tmp_path / "runs/caltech/seed1"), "--set",
                   f"dataset.root={root}", "--run", '{"device": "cpu"}'])
    err = capsys.readouterr().err
    assert code != 0 and "Caltech-256 not found: put the archive" in err, err
    assert not (tmp_path / "runs").exists()  # no empty run directory with its .lock


def test_a_dataset_root_or_cache_is_created_only_inside_an_existing_directory(tmp_path, capsys):
    """The digits stand-in would write its images anywhere: a root whose parent is missing is
    named with its key, and so is a cache directory that cannot be created; nothing is
    created, no run directory either."""
    run = tmp_path / "runs/digits/seed1"
    code = exit_code(T.main, [*CL, "--out", str(run), "--set",
                              f"dataset.root={tmp_path / 'nonexistent/x'}"])
    err = capsys.readouterr().err
    assert code == 2 and f"dataset.root: {tmp_path / 'nonexistent/x'} does not exist, nor " \
        f"does its parent {tmp_path / 'nonexistent'}" in err, err
    code = exit_code(T.main, [*CL, "--out", str(run), "--set", f"dataset.root={tmp_path / 'd'}",
                              "--set", "run.cache_dir=/proc/nope"])
    err = capsys.readouterr().err
    assert code == 2 and "run.cache_dir: cannot create /proc/nope: " in err, err
    assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)


def test_a_loss_parameter_outside_its_declared_bounds_is_named(tmp_path, capsys):
    """Scope's alpha is declared >= 0 (`param(0.01, low=0)`), the supervised Scope's in
    [0, 1]: a value outside is refused by both CLIs and the grid check, naming the key."""
    err = _rl([*RL[:2], "--loss", "scope", "--seed", "1", "--out", str(tmp_path / "rl"),
               "--set", "loss.alpha=-5"], capsys)
    assert "loss.alpha must be a finite number >= 0, got -5" in err, err
    code = exit_code(T.main, ["--dataset", "digits_lt", "--experiment", "plain", "--loss",
                              "scope", "--seed", "1", "--out", str(tmp_path / "cl"),
                              "--set", "loss.alpha=2"])
    err = capsys.readouterr().err
    assert code == 2 and "loss.alpha must be a finite number in [0, 1], got 2" in err, err
    from scopeloss import grid

    config = grid.load_config("config.yaml")
    config["rl"].setdefault("loss_specs", {})["scope"] = {"alpha": -5}
    with pytest.raises(ValueError, match=r"rl\.loss_specs\.scope\.alpha must be a finite "
                                         r"number >= 0, got -5"):
        grid.check_config(config)
    assert not (tmp_path / "rl").exists() and not (tmp_path / "cl").exists()

