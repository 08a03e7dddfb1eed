"""Run settings vs hyperparameters, the run lifecycle (skip / rebuild / resume / fresh),
checkpoint robustness and input checks of the classification trainer (issues 10, 11, 14)."""

import json
import os

import pandas as pd
import pytest
import torch

from scopeloss.classify import config as C
from scopeloss.classify import data as D
from scopeloss.classify import train as T

SMALL = ("experiment.epochs=2", "dataset.max_per_class=40", "experiment.batch_size=32",
         "experiment.early_stopping_patience=null")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def _args(root, out, *sets, experiment="plain", loss="ce"):
    return ["--dataset", "digits_lt", "--experiment", experiment, "--loss", loss, "--seed", "1",
            "--out", str(out), "--set", f"dataset.root={root}",
            "--set", "experiment.model=resnet18", "--set", "run.torch_threads=1",
            "--set", "run.num_workers=0", *[a for s in sets for a in ("--set", s)]]


class Stop(Exception):
    pass


def _no_training(monkeypatch):
    """Any training step is an error from here on."""
    def step_factory(*a, **k):
        def step(idx):
            raise AssertionError("an epoch ran")
        return step
    monkeypatch.setattr(T, "make_train_step", step_factory)


def _run_in_process(root, out, *sets, stop_after=None, **kw):
    a = T.parse_args(_args(root, out, *sets, **kw))
    hp, run = C.split_sets(C.parse_set(a.set))
    h = C.resolve(a.dataset, a.experiment, a.loss, None, hp)

    def stop(epoch):
        if stop_after is not None and epoch == stop_after:
            raise Stop()
    return T.train(a.dataset, a.experiment, a.loss, a.seed, a.out, h, on_epoch_end=stop,
                   run=C.resolve_run(None, run))


@pytest.fixture(scope="module")
def finished(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert T.main(_args(data_root, out, *SMALL)) == 0
    return out


# --- issue 10: run settings -------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--set", "experiment.device=cpu"], "experiment.device is a run setting now, not a "
                                          "hyperparameter: pass it as run.device"),
    (["--set", "experiment.num_workers=2"], "experiment.num_workers is a run setting now"),
    (["--hparams", '{"dataset": {"cache_dir": "/x"}}'], "dataset.cache_dir is a run setting now"),
    (["--hparams", '{"run": {"device": "cpu"}}'], "run settings do not go in --hparams"),
    (["--set", "run.num_workers=abc"], "run.num_workers must be null or an integer >= 0"),
    (["--set", "run.checkpoint_every=0"], "run.checkpoint_every must be a positive integer"),
    (["--set", "run.deterministic=maybe"], "run.deterministic must be true or false"),
    (["--set", "run.device=tpu"], "run.device must be one of auto, cpu, cuda"),
    (["--run", '{"bogus": 1}'], "unknown key run.bogus; allowed: cache_dir, channels_last"),
    (["--run", "{not json"], "--run is not valid JSON"),
    (["--run", "missing.json"], "--run 'missing.json' is neither a JSON object nor an existing"),
])
def test_run_settings_are_validated_naming_the_key(argv, message, tmp_path, capsys):
    args = ["--dataset", "digits_lt", "--experiment", "plain", "--loss", "ce", "--seed", "1",
            "--out", str(tmp_path / "o"), "--set", f"dataset.root={tmp_path}", *argv]
    assert T.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_run_json_file_and_set_overlay(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"num_workers": 3, "checkpoint_every": 5}))
    run = C.resolve_run(C._load_run(str(path)), {"checkpoint_every": 2})
    assert run["num_workers"] == 3 and run["checkpoint_every"] == 2 and run["tensorboard"]
    assert C.effective_run(C.resolve_run())["torch_threads"] == C.allowed_cores()


def test_finished_run_summary_records_identity_and_run_settings(finished):
    from scopeloss.fingerprint import TRAINERS, code_fingerprint

    s = json.loads((finished / "summary.json").read_text())
    assert s["code_fingerprint"] == code_fingerprint(TRAINERS["classify"])
    assert s["run_settings"]["num_workers"] == 0 and s["run_settings"]["torch_threads"] == 1
    assert s["run_settings"]["device"] == "cpu" and s["run_settings"]["checkpoint_every"] == 1
    assert "device" not in s["hparams"]["experiment"]
    assert "cache_dir" not in s["hparams"]["dataset"]
    history = pd.read_csv(finished / "history.csv")
    assert list(history.columns) == T.HISTORY_COLUMNS and (history["images_per_s"] > 0).all()


@pytest.mark.parametrize("missing", ["per_class.csv", "summary.json", "history.csv"])
def test_missing_output_is_rebuilt_from_the_final_checkpoint(missing, finished, data_root,
                                                             tmp_path, monkeypatch, capfd):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = {f: (out / f).read_text() for f in T.OUTPUTS}
    (out / missing).unlink()
    _no_training(monkeypatch)
    assert T.main(_args(data_root, out, *SMALL)) == 0
    assert "rebuilding outputs from the final checkpoint" in capfd.readouterr().err
    assert (out / missing).read_text() and all((out / f).is_file() for f in T.OUTPUTS)
    if missing != "summary.json":
        assert (out / missing).read_text() == before[missing]
    a, b = json.loads(before["summary.json"]), json.loads((out / "summary.json").read_text())
    assert a["top1"] == b["top1"] and a["precision_mean"] == b["precision_mean"]


def test_changed_run_settings_skip_a_finished_run(finished, data_root, monkeypatch, capfd):
    mtime = (finished / "summary.json").stat().st_mtime_ns
    _no_training(monkeypatch)
    assert T.main(_args(data_root, finished, *SMALL, "run.checkpoint_every=3",
                        "run.num_workers=1", "run.torch_threads=2")) == 0
    assert "nothing to do" in capfd.readouterr().err
    assert (finished / "summary.json").stat().st_mtime_ns == mtime


def test_changed_run_settings_resume_an_unfinished_run(data_root, tmp_path, capfd):
    sets = ("experiment.epochs=3", *SMALL[1:])
    out = tmp_path / "run"
    with pytest.raises(Stop):
        _run_in_process(data_root, out, *sets, stop_after=1)
    capfd.readouterr()
    _run_in_process(data_root, out, *sets, "run.num_workers=1", "run.checkpoint_every=2")
    err = capfd.readouterr().err
    assert "resuming" in err and "after epoch 1" in err and "epoch 1:" not in err
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]


def test_changed_code_fingerprint_retrains_from_epoch_one(finished, data_root, tmp_path,
                                                          monkeypatch, capfd):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    monkeypatch.setattr(T, "code_fingerprint", lambda entry: "0123456789abcdef")
    epochs = []
    real = T.make_train_step

    def counting(*a, **k):
        step = real(*a, **k)
        epochs.append(0)
        return step
    monkeypatch.setattr(T, "make_train_step", counting)
    assert T.main(_args(data_root, out, *SMALL)) == 0
    err = capfd.readouterr().err
    assert "code changed (fingerprint" in err and "starting afresh" in err
    assert "epoch 1:" in err and "epoch 2:" in err
    assert json.loads((out / "summary.json").read_text())["code_fingerprint"] == "0123456789abcdef"


def test_prepare_writes_manifest_cache_and_index(data_root, tmp_path, capsys):
    index = tmp_path / "idx" / "digits_lt.json"
    cache = tmp_path / "cache"
    hp = json.dumps({"dataset": {"root": str(tmp_path / "d"), "max_per_class": 40}})
    run = json.dumps({"cache_dir": str(cache), "num_workers": 0})
    assert D.main(["prepare", "--dataset", "digits_lt", "--hparams", hp, "--run", run,
                   "--index", str(index)]) == 0
    got = json.loads(index.read_text())
    assert got["num_classes"] == 10 and got["resize_size"] == 32 and got["kind"] == "digits_lt"
    assert set(got["cache"]) == set(D.SPLITS)
    for split, path in got["cache"].items():
        assert path.startswith(str(cache)) and os.path.isfile(path)
    manifest = json.loads(open(got["manifest"]).read())
    assert manifest["hash"] == got["manifest_hash"]
    assert got["counts"] == {s: sum(manifest["counts"][s]) for s in D.SPLITS}
    # The trainer uses what prepare built (the same cache files, untouched).
    mtimes = {p: os.stat(p).st_mtime_ns for p in got["cache"].values()}
    out = tmp_path / "run"
    assert T.main(_args(tmp_path / "d", out, "experiment.epochs=1", "dataset.max_per_class=40",
                        "experiment.batch_size=32", f"run.cache_dir={cache}")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run_settings"]["cache_dir"] == str(cache)
    assert {p: os.stat(p).st_mtime_ns for p in got["cache"].values()} == mtimes
    # Bad inputs of prepare: exit 2 with a message.
    assert D.main(["prepare", "--dataset", "digits_lt", "--run", '{"cache_dir": 3}',
                   "--index", str(index)]) == 2
    assert "run.cache_dir must be null or a path" in capsys.readouterr().err
