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
    assert code != 0 and "Caltech-256 not found: put the archive" in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "nonexistent").exists()
