"""Run settings vs hyperparameters, the run lifecycle (skip / rebuild / resume / fresh),
checkpoint robustness and input checks of the classification trainer (issues 10, 11, 14)."""

import json
import os

import pandas as pd
import pytest
import torch

from scopeloss import devices
from scopeloss.classify import config as C
from scopeloss.classify import caltech
from scopeloss.classify import data as D
from scopeloss.classify import job
from scopeloss.classify import train as T
from cli import exit_code
from scopeloss.config_keys import merge
from classifier_helpers import SMALL, Stop, classifier_args, run_in_process


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def _no_training(monkeypatch):
    """Any training step is an error from here on."""
    def step_factory(*a, **k):
        def step(idx):
            raise AssertionError("an epoch ran")
        return step
    monkeypatch.setattr(T, "make_train_step", step_factory)


@pytest.fixture(scope="module")
def finished(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert T.main(classifier_args(data_root, out, *SMALL)) == 0
    return out


# --- issue 10: run settings -------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--set", "experiment.device=cpu"], "experiment.device is a run setting now, not a "
                                          "hyperparameter: pass it as run.device"),
    (["--set", "experiment.num_workers=2"], "experiment.num_workers is a run setting now"),
    (["--hparams", '{"dataset": {"cache_dir": "/x"}}'], "dataset.cache_dir is a run setting now"),
    (["--hparams", '{"run": {"device": "cpu"}}'], "'run' holds run settings, not hyperparameters"),
    (["--set", "run.num_workers=abc"], "run.num_workers must be null or an integer >= 0"),
    (["--set", "run.checkpoint_every=0"], "run.checkpoint_every must be a positive integer"),
    (["--set", "run.deterministic=maybe"], "run.deterministic must be true or false"),
    (["--set", "run.device=tpu"], "run.device must be one of auto, cpu, cuda"),
    (["--run", '{"bogus": 1}'], "unknown key run.bogus; allowed: device, compile, channels_last"),
    (["--run", "{not json"], "--run is not valid JSON"),
    (["--run", "missing.json"], "--run 'missing.json' is neither a JSON object nor an existing"),
])
def test_run_settings_are_validated_naming_the_key(argv, message, tmp_path, capsys):
    args = ["--dataset", "digits_lt", "--experiment", "plain", "--loss", "ce", "--seed", "1",
            "--out", str(tmp_path / "o"), "--set", f"dataset.root={tmp_path}", *argv]
    assert exit_code(T.main, args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_run_json_file_and_set_overlay(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"num_workers": 3, "checkpoint_every": 5}))
    run = C.resolve_run(None, C.load_run(str(path)), {"checkpoint_every": 2})
    assert run["num_workers"] == 3 and run["checkpoint_every"] == 2 and run["tensorboard"]
    assert C.resolve_run()["torch_threads"] == devices.job_cores()


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
    before = {f: (out / f).read_text() for f in job.OUTPUTS}
    (out / missing).unlink()
    _no_training(monkeypatch)
    assert T.main(classifier_args(data_root, out, *SMALL)) == 0
    assert "rebuilding outputs from the final checkpoint" in capfd.readouterr().err
    assert (out / missing).read_text() and all((out / f).is_file() for f in job.OUTPUTS)
    if missing != "summary.json":
        assert (out / missing).read_text() == before[missing]
    a, b = json.loads(before["summary.json"]), json.loads((out / "summary.json").read_text())
    assert a["top1"] == b["top1"] and a["precision_mean"] == b["precision_mean"]
    # the last epoch's test metrics, kept by the final checkpoint, which holds no weights
    assert 0 <= b["final_epoch_top1"] <= 1 and b["final_epoch_top1"] == a["final_epoch_top1"]
    assert set(b) >= {f"final_epoch_{k}" for k in T.FINAL_EPOCH_METRICS}


def test_changed_run_settings_skip_a_finished_run(finished, data_root, monkeypatch, capfd):
    mtime = (finished / "summary.json").stat().st_mtime_ns
    _no_training(monkeypatch)
    assert T.main(classifier_args(data_root, finished, *SMALL, "run.checkpoint_every=3",
                        "run.num_workers=1", "run.torch_threads=2")) == 0
    assert "nothing to do" in capfd.readouterr().err
    assert (finished / "summary.json").stat().st_mtime_ns == mtime


def test_changed_run_settings_resume_an_unfinished_run(data_root, tmp_path, capfd):
    sets = ("experiment.epochs=3", *SMALL[1:])
    out = tmp_path / "run"
    with pytest.raises(Stop):
        run_in_process(data_root, out, *sets, stop_after=1)
    capfd.readouterr()
    run_in_process(data_root, out, *sets, "run.num_workers=1", "run.checkpoint_every=2")
    err = capfd.readouterr().err
    assert "resuming" in err and "after epoch 1" in err and "epoch 1:" not in err
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]


def test_changed_code_fingerprint_retrains_from_epoch_one(finished, data_root, tmp_path,
                                                          monkeypatch, capfd):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    monkeypatch.setattr(job, "cell_fingerprint", lambda trainer, loss: "0123456789abcdef")
    epochs = []
    real = T.make_train_step

    def counting(*a, **k):
        step = real(*a, **k)
        epochs.append(0)
        return step
    monkeypatch.setattr(T, "make_train_step", counting)
    assert T.main(classifier_args(data_root, out, *SMALL)) == 0
    err = capfd.readouterr().err
    assert "checkpoint is from other code (fingerprint" in err and "starting afresh" in err
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
    for _split, path in got["cache"].items():
        assert path.startswith(str(cache)) and os.path.isfile(path)
    manifest = json.loads(open(got["manifest"]).read())
    assert manifest["hash"] == got["manifest_hash"]
    assert got["counts"] == {s: sum(manifest["counts"][s]) for s in D.SPLITS}
    # The trainer uses what prepare built (the same cache files, untouched).
    mtimes = {p: os.stat(p).st_mtime_ns for p in got["cache"].values()}
    out = tmp_path / "run"
    assert T.main(classifier_args(tmp_path / "d", out, "experiment.epochs=1", "dataset.max_per_class=40",
                        "experiment.batch_size=32", f"run.cache_dir={cache}")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run_settings"]["cache_dir"] == str(cache)
    assert {p: os.stat(p).st_mtime_ns for p in got["cache"].values()} == mtimes
    # Bad inputs of prepare: exit 2 with a message.
    assert exit_code(D.main, ["prepare", "--dataset", "digits_lt", "--run", '{"cache_dir": 3}',
                   "--index", str(index)]) == 2
    assert "run.cache_dir must be null or a non-empty string" in capsys.readouterr().err


# --- issue 14: checkpoints, temporary files, disk errors, bad input -----------------------
def _unfinished(root, out):
    with pytest.raises(Stop):
        run_in_process(root, out, *SMALL, stop_after=1)
    assert (out / ".ckpt" / "last.pt").is_file()


CORRUPTIONS = {
    "truncated zip": lambda b: b[: len(b) // 2],
    "garbage bytes": lambda b: b"\x80\x04garbage" * 100,
    "empty file": lambda b: b"",
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_checkpoint_is_moved_aside_and_the_run_starts_afresh(kind, data_root, tmp_path,
                                                                     capfd):
    out = tmp_path / "run"
    _unfinished(data_root, out)
    last = out / ".ckpt" / "last.pt"
    last.write_bytes(CORRUPTIONS[kind](last.read_bytes()))
    capfd.readouterr()
    assert T.main(classifier_args(data_root, out, *SMALL)) == 0
    err = capfd.readouterr().err
    line = next(x for x in err.splitlines() if "unreadable checkpoint" in x)
    assert str(last) in line and "moved to last.pt.corrupt" in line and "afresh" in line
    assert (out / ".ckpt" / "last.pt.corrupt").is_file()
    assert "epoch 1:" in err and "Traceback" not in err
    assert all((out / f).is_file() for f in job.OUTPUTS)


def test_finished_run_is_skipped_before_its_checkpoint_is_read(finished, data_root, tmp_path,
                                                                capfd):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / ".ckpt" / "last.pt").write_bytes(b"")
    assert T.main(classifier_args(data_root, out, *SMALL)) == 0
    assert "nothing to do" in capfd.readouterr().err
    assert (out / ".ckpt" / "last.pt").read_bytes() == b""  # not even looked at


def test_stale_temporary_files_are_removed_at_start(data_root, tmp_path):
    out = tmp_path / "run"
    _unfinished(data_root, out)
    stale = [out / ".ckpt" / ".last.pt.abc123.tmp", out / ".summary.json.x1.tmp"]
    for f in stale:
        f.write_bytes(b"\0" * 1000)
    assert T.main(classifier_args(data_root, out, *SMALL)) == 0
    assert not any(f.exists() for f in stale)


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096"),
    OSError(28, "No space left on device"),
])
def test_checkpoint_write_failure_names_the_file(error, data_root, tmp_path, monkeypatch,
                                                 capsys):
    def failing_save(obj, f, *a, **k):
        raise error
    monkeypatch.setattr(torch, "save", failing_save)
    assert exit_code(T.main, classifier_args(data_root, tmp_path / "run", *SMALL)) == 1
    err = capsys.readouterr().err
    assert "could not write checkpoint" in err and str(tmp_path / "run") in err
    assert "bytes free in" in err
    if isinstance(error, OSError):
        assert "No space left on device" in err
    assert not list((tmp_path / "run" / ".ckpt").glob(".*.tmp"))


def test_unwritable_out_fails_before_data_loads(tmp_path, monkeypatch, capsys):
    def no_data(*a, **k):
        raise AssertionError("data loaded")
    monkeypatch.setattr(T, "load_dataset", no_data)
    target = tmp_path / "file"
    target.write_text("x")
    assert exit_code(T.main, classifier_args(tmp_path, target)) == 2
    assert f"--out {target} exists and is not a directory" in capsys.readouterr().err
    assert exit_code(T.main, classifier_args(tmp_path, target / "sub")) == 2
    assert "is not a writable directory" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes to read-only folders
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        assert exit_code(T.main, classifier_args(tmp_path, ro / "run")) == 2
        assert "is not a writable directory" in capsys.readouterr().err


def test_unusable_cache_dir_is_a_message(data_root, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert exit_code(T.main, classifier_args(tmp_path / "d", tmp_path / "run", *SMALL,
                        f"run.cache_dir={blocker}/cache")) == 2
    err = capsys.readouterr().err
    assert f"error: run.cache_dir: {blocker}/cache: its parent {blocker} is not a directory" \
        in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--set", "experiment.lr=abc"], "experiment.lr must be a finite number > 0, got 'abc'"),
    (["--set", "experiment.lr=inf"], "experiment.lr must be a finite number > 0, got 'inf'"),
    (["--set", "experiment.momentum=abc"], "experiment.momentum must be a finite number in [0, 1]"),
    (["--set", "experiment.weight_decay=abc"], "experiment.weight_decay must be a finite"),
    (["--set", "experiment.weight_decay=.nan"], "experiment.weight_decay must be a finite"),
    (["--set", "experiment.augment=maybe"], "experiment.augment must be true or false, got"),
    (["--set", "experiment.bf16=no thanks"], "experiment.bf16 must be true or false, got"),
    (["--set", "experiment.epochs=true"], "experiment.epochs must be a positive integer, got True"),
    (["--set", "experiment.batch_size=1"], "experiment.batch_size must be an integer >= 2"),
    (["--set", "loss.alpha=abc"], "loss.alpha: loss 'focal' takes no parameter 'alpha' (its "
                                  "parameters: gamma)"),
    (["--set", "loss.gamma=abc"], "loss.gamma must be a finite number >= 0, got 'abc'"),
    (["--set", "loss.gamma=-.inf"], "loss.gamma must be a finite number >= 0, got -inf"),
    (["--set", "experiment.augmentation.flip_p=x"], "experiment.augmentation.flip_p must be"),
    (["--set", "experiment.augmentation.color=[1, x]"], "experiment.augmentation.color must be"),
    (["--set", "dataset.split_seed=-1"], "dataset.split_seed must be an integer in [0, 4294967295]"),
    (["--set", "dataset.val_fraction=abc"], "dataset.val_fraction must be a finite number in (0, 1)"),
    (["--set", "dataset.imbalance_ratio=abc"], "dataset.imbalance_ratio must be a finite number"),
    (["--seed", "1099511627776"], "seed must be an integer in 0..4294967295, got 1099511627776"),
    (["--hparams", '{"experiment": 5}', "--set", "experiment.lr=1"],
     "section 'experiment' must be a mapping, got 5"),
    (["--hparams", '{"experiment": {"augmentation": 3}}'],
     "section 'experiment.augmentation' must be a mapping, got 3"),
])
def test_bad_hyperparameters_stop_before_data_loads(argv, message, tmp_path, monkeypatch, capsys):
    def no_data(*a, **k):
        raise AssertionError("data loaded")
    monkeypatch.setattr(T, "load_dataset", no_data)
    seed = argv[1] if argv[0] == "--seed" else "1"
    rest = argv[2:] if argv[0] == "--seed" else argv
    args = ["--dataset", "digits_lt", "--experiment", "plain", "--loss", "focal", "--seed", seed,
            "--out", str(tmp_path / "o"), "--set", f"dataset.root={tmp_path}", *rest]
    assert exit_code(T.main, args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _truncated_png(path):
    """A PNG whose IDAT holds half a zlib stream with a valid CRC: verify() passes it."""
    import io as _io
    import struct
    import zlib

    import numpy as np
    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)
                    ).save(buf, format="PNG")
    raw, out, pos = buf.getvalue(), bytearray(buf.getvalue()[:8]), 8
    while pos < len(raw):
        n, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + n]
        if kind == b"IDAT":
            body = body[: len(body) // 2]
        out += struct.pack(">I4s", len(body), kind) + body
        out += struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        pos += 12 + n
    path.write_bytes(bytes(out))
    with Image.open(path) as im:
        im.verify()  # the old scan's only test


def test_caltech_scan_skips_an_undecodable_png_and_records_it(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "caltech256" / caltech.CALTECH_FOLDER
    for c in ("001.a", "002.b"):
        (folder / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((40, 50, 3), 30 * i, np.uint8)).save(folder / c / f"{i}.png")
    _truncated_png(folder / "001.a" / "bad.png")
    cfg = merge(C.DATASETS["caltech256"], {"root": str(tmp_path), "resize_size": 32,
                                             "image_size": 32})
    manifest, _ = D.get_manifest(cfg)
    assert manifest["skipped"] == ["001.a/bad.png"]
    assert "001.a/bad.png" in manifest["skipped_reasons"]
    listed = [rel for s in D.SPLITS for rel, _ in manifest["items"][s]]
    assert "001.a/bad.png" not in listed and len(listed) == 10
    D.load_dataset(cfg)  # every listed image decodes

    # An image that breaks after the scan: the CLI exits 2 naming it, no traceback.
    (folder / "002.b" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cfg2 = merge(cfg, {"resize_size": 40})
    assert exit_code(D.main, ["prepare", "--dataset", "caltech256", "--root", str(tmp_path),
                   "--no-download", "--cache", "--resize-size", "40", "--num-workers", "0",
                   "--hparams", '{"dataset": {"image_size": 32}}']) == 2
    err = capsys.readouterr().err
    assert "cannot decode" in err and "002.b/3.png" in err and "Traceback" not in err
    assert not any(D.cache_path(cfg2, manifest, s).exists() for s in D.SPLITS)


def test_archive_with_a_special_file_is_refused_with_a_message(tmp_path, capsys):
    import hashlib
    import io as _io
    import tarfile

    tar_path = tmp_path / "a.tar"
    with tarfile.open(tar_path, "w") as tar:
        d = tarfile.TarInfo(f"{caltech.CALTECH_FOLDER}/001.a")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        fifo = tarfile.TarInfo(f"{caltech.CALTECH_FOLDER}/001.a/pipe")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)
        f = tarfile.TarInfo(f"{caltech.CALTECH_FOLDER}/001.a/x.txt")
        f.size = 3
        tar.addfile(f, _io.BytesIO(b"abc"))
    md5 = hashlib.md5(tar_path.read_bytes()).hexdigest()
    with pytest.raises(D.DataUnavailable, match="special file"):
        caltech.ensure_caltech256(tmp_path / "data", download_missing=True, url=tar_path.as_uri(),
                            md5=md5)
    (tmp_path / "data2" / "caltech256").mkdir(parents=True)
    (tmp_path / "data2" / "caltech256" / caltech.CALTECH_ARCHIVE).write_bytes(b"not a tar at all")
    with pytest.raises(D.DataUnavailable, match="cannot open the archive"):
        caltech.ensure_caltech256(tmp_path / "data2", md5=None)
