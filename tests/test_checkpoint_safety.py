"""Checkpoints are data, never code, and no crafted, corrupt or misplaced checkpoint crashes a
rerun (issue 29): each case is moved aside under its unique name with one whole message, and
the run starts afresh; a checkpoint of other settings is kept aside, not overwritten."""

import os
import pickle

import pytest
import torch

from scopeloss import lifecycle
from scopeloss.classify import job
from scopeloss.classify import train as T
from scopeloss.rl import ppo
from scopeloss.rl.config import resolve

from classifier_helpers import SMALL as C_SMALL, Stop, classifier_args, run_in_process


class Payload:
    """Unpickling this runs ``touch MARKER``: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_payload(path, marker, zipped):
    path.parent.mkdir(parents=True, exist_ok=True)
    if zipped:  # torch's own format, the payload inside its data.pkl
        torch.save({"identity": {}, "finished": False, "update": 1, "x": Payload(marker)}, path)
    else:  # a raw pickle
        path.write_bytes(pickle.dumps(Payload(marker)))


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """The test's payload is live: loaded the old way it creates its file."""
    marker = tmp_path / "ran"
    write_payload(tmp_path / "p.pt", marker, zipped=True)
    torch.load(tmp_path / "p.pt", weights_only=False)
    assert marker.exists()


# --- RL ------------------------------------------------------------------------------------
SMALL = {"num_envs": 4, "num_steps": 32, "update_epochs": 1, "num_minibatches": 2}
RUN = {"torch_threads": 1, "device": "cpu", "checkpoint_every": 2, "tensorboard": False}
TOTAL = 4 * 32 * 6


def rl_run(out, hp=None):
    said = []
    hp = hp or resolve("CartPole-v1", "policy", {"ppo": {**SMALL, "total_steps": TOTAL}})
    summary = ppo.train(hp, seed=3, out=out,
                        run=RUN, log=said.append)
    return summary, said


@pytest.fixture(scope="module")
def rl_checkpoint(tmp_path_factory):
    """A genuine checkpoint of an unfinished run (update 2 of 6)."""
    out = tmp_path_factory.mktemp("rl") / "run"
    real = lifecycle.save_checkpoint

    def save_then_die(path, obj):
        real(path, obj)
        raise Stop()

    lifecycle.save_checkpoint = save_then_die
    try:
        with pytest.raises(Stop):
            rl_run(out)
    finally:
        lifecycle.save_checkpoint = real
    return lifecycle.read_checkpoint(out / ".ckpt" / "checkpoint.pt")


def _garbage_optimizer(c):
    c["optimizer"] = {"state": "garbage", "param_groups": 5}


def _bad_rng(c):
    c["rng"] = {"torch": "nope"}


def _small_tensors(c):
    c["model"] = {k: torch.zeros(3) for k in c["model"]}


def _string_state(c):
    c["state"] = {k: "x" for k in c["state"]}


def _no_model(c):
    del c["model"]


def _past_the_end(c):
    c["update"] = 10_000


RL_CRAFTED = {"garbage optimizer": (_garbage_optimizer, "TypeError"),
              "rng not tensors": (_bad_rng, "TypeError"),
              "tensors of another shape": (_small_tensors, "size mismatch"),
              "state of strings": (_string_state, "Error"),
              "no model": (_no_model, "no key 'model'"),
              "update past the end": (_past_the_end, "update 10000 of a run of 6 updates")}


def _one_line(said, path):
    lines = [x for x in said if "unreadable checkpoint" in x]
    assert len(lines) == 1 and str(path) in lines[0] and "afresh" in lines[0], said
    return lines[0]


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "raw-pickle"])
def test_rl_a_checkpoint_with_code_is_refused_unrun(tmp_path, zipped):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    ckpt = out / ".ckpt" / "checkpoint.pt"
    write_payload(ckpt, marker, zipped)
    summary, said = rl_run(out)
    assert not marker.exists()
    line = _one_line(said, ckpt)
    assert "holds more than data, refused unread" in line and "checkpoint.pt.corrupt" in line
    assert "weights_only" not in line and "safe_globals" not in line  # never torch's advice
    assert not zipped or "(it names posix.system, which no data does)" \
        in line, line
    assert (ckpt.parent / "checkpoint.pt.corrupt").is_file()
    assert summary["global_step"] == TOTAL and summary["resumes"] == []


@pytest.mark.parametrize("case", list(RL_CRAFTED))
def test_rl_a_crafted_checkpoint_is_moved_aside_and_the_run_starts_afresh(
        tmp_path, rl_checkpoint, case):
    craft, expected = RL_CRAFTED[case]
    out = tmp_path / "run"
    ckpt = out / ".ckpt" / "checkpoint.pt"
    crafted = {k: v for k, v in rl_checkpoint.items()}
    crafted["state"] = dict(crafted["state"])
    craft(crafted)
    lifecycle.save_checkpoint(ckpt, crafted)
    summary, said = rl_run(out)
    line = _one_line(said, ckpt)
    assert expected in line and "moved to checkpoint.pt.corrupt " in line
    assert "\n" not in line and "Traceback" not in line
    assert (ckpt.parent / "checkpoint.pt.corrupt").is_file()
    assert summary["global_step"] == TOTAL and summary["resumes"] == []


def test_rl_a_folder_in_the_checkpoints_place_is_moved_aside(tmp_path):
    out = tmp_path / "run"
    ckpt = out / ".ckpt" / "checkpoint.pt"
    (ckpt / "inside").mkdir(parents=True)
    summary, said = rl_run(out)
    assert "not a regular file" in _one_line(said, ckpt)
    assert (ckpt.parent / "checkpoint.pt.corrupt" / "inside").is_dir()
    assert ckpt.is_file() and summary["global_step"] == TOTAL


def test_rl_a_checkpoint_of_other_settings_is_kept_aside(tmp_path, rl_checkpoint):
    out = tmp_path / "run"
    ckpt = out / ".ckpt" / "checkpoint.pt"
    other = {**rl_checkpoint, "identity": {**rl_checkpoint["identity"], "seed": 99}}
    lifecycle.save_checkpoint(ckpt, other)
    summary, said = rl_run(out)
    line = next(x for x in said if "checkpoint is from other settings" in x)
    assert "moved to checkpoint.pt.other" in line
    assert lifecycle.read_checkpoint(ckpt.parent / "checkpoint.pt.other")["identity"]["seed"] == 99
    assert summary["resumes"] == [] and summary["global_step"] == TOTAL


# --- classifier ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def c_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def c_checkpoint(c_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cls") / "run"
    with pytest.raises(Stop):
        run_in_process(c_root, out, *C_SMALL, stop_after=1)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst / ".ckpt" / "last.pt"


C_CRAFTED = {"garbage optimizer": (_garbage_optimizer, "TypeError"),
             "rng not tensors": (_bad_rng, "TypeError"),
             "tensors of another shape": (_small_tensors, "size mismatch"),
             "no best_epoch": (lambda c: c.pop("best_epoch"), "no key 'best_epoch'"),
             "epoch past the end": (lambda c: c.update(epoch=50), "epoch 50 of a run of 2")}


def _classifier(root, out, capfd):
    capfd.readouterr()
    assert T.main(classifier_args(root, out, *C_SMALL)) == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err and "epoch 1:" in err and "epoch 2:" in err
    assert all((out / f).is_file() for f in job.OUTPUTS)
    return err


def test_classifier_a_checkpoint_with_code_is_refused_unrun(tmp_path, c_root, capfd):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    last = out / ".ckpt" / "last.pt"
    write_payload(last, marker, zipped=True)
    err = _classifier(c_root, out, capfd)
    assert not marker.exists()
    line = _one_line(err.splitlines(), last)
    assert "holds more than data" in line and (last.parent / "last.pt.corrupt").is_file()
    assert "weights_only" not in line and "safe_globals" not in line  # never torch's advice


@pytest.mark.parametrize("case", list(C_CRAFTED))
def test_classifier_a_crafted_checkpoint_is_moved_aside_and_the_run_starts_afresh(
        tmp_path, c_root, c_checkpoint, capfd, case):
    craft, expected = C_CRAFTED[case]
    last = _copy(c_checkpoint, tmp_path / "run")
    crafted = lifecycle.read_checkpoint(last)
    craft(crafted)
    lifecycle.save_checkpoint(last, crafted)
    err = _classifier(c_root, tmp_path / "run", capfd)
    line = _one_line(err.splitlines(), last)
    assert expected in line and "moved to last.pt.corrupt " in line
    assert "resuming" not in err


def test_classifier_a_folder_in_the_checkpoints_place_is_moved_aside(tmp_path, c_root, capfd):
    last = tmp_path / "run" / ".ckpt" / "last.pt"
    last.mkdir(parents=True)
    err = _classifier(c_root, tmp_path / "run", capfd)
    assert "not a regular file" in _one_line(err.splitlines(), last)
    assert (last.parent / "last.pt.corrupt").is_dir()


def test_classifier_a_checkpoint_of_other_settings_is_kept_aside(tmp_path, c_root, c_checkpoint,
                                                                 capfd):
    last = _copy(c_checkpoint, tmp_path / "run")
    state = lifecycle.read_checkpoint(last)
    state["identity"] = {**state["identity"], "seed": 99}
    lifecycle.save_checkpoint(last, state)
    err = _classifier(c_root, tmp_path / "run", capfd)
    assert "checkpoint is from other settings" in err and "moved to last.pt.other" in err
    assert lifecycle.read_checkpoint(last.parent / "last.pt.other")["identity"]["seed"] == 99
