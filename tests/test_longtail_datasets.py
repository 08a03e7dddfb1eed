"""The long-tail field's datasets in their real formats, generated small here: CIFAR-10/100
binary archives (``cifar_lt``: md5, no unpickling, the exponential profile, a balanced
validation and test set) and list files (``image_list``: nothing leaves the tree); a
ResNet-32 run on each reports many / medium / few-shot accuracy."""

import dataclasses
import hashlib
import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from scopeloss.classify import cifar, data
from scopeloss.classify import config as C
from scopeloss.classify import train as T
from scopeloss.classify.errors import DataUnavailable
from scopeloss.params import DatasetConfig


def _tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _records(labels, label_bytes, rng):
    """Binary records; an image's red plane holds its index (for checking the decode)."""
    rows = np.zeros((len(labels), label_bytes + 3072), dtype=np.uint8)
    for i, label in enumerate(labels):
        rows[i, :label_bytes] = label if label_bytes == 1 else (label // 10, label)
        pixels = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
        pixels[0, 0, :2] = (i // 256, i % 256)
        rows[i, label_bytes:] = pixels.reshape(-1)
    return rows.tobytes()


def make_cifar10(root, monkeypatch, per_class=100, test_per_class=20):
    rng = np.random.default_rng(0)
    train = rng.permutation(np.repeat(np.arange(10), per_class))
    batches = np.array_split(train, 5)
    members = {f"cifar-10-batches-bin/data_batch_{i + 1}.bin": _records(b, 1, rng)
               for i, b in enumerate(batches)}
    members["cifar-10-batches-bin/test_batch.bin"] = _records(
        np.repeat(np.arange(10), test_per_class), 1, rng)
    members["cifar-10-batches-bin/batches.meta.txt"] = "\n".join(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck", ""]).encode()
    root.mkdir(parents=True, exist_ok=True)
    md5 = _tar(root / "cifar-10-binary.tar.gz", members)
    monkeypatch.setitem(cifar.ARCHIVES, "cifar10",
                        dataclasses.replace(cifar.ARCHIVES["cifar10"], md5=md5))
    return train, batches


def _dcfg(root, **values):
    return DatasetConfig.of(C.resolve_dataset("cifar10_lt", {
        "root": str(root), "imbalance_ratio": 10.0, "val_per_class": 5, **values}))


def test_cifar10_lt_profile_balanced_validation_and_test(tmp_path, monkeypatch):
    train, batches = make_cifar10(tmp_path, monkeypatch)
    dcfg = _dcfg(tmp_path)
    manifest, _ = data.get_manifest(dcfg)
    counts = manifest["counts"]
    # floor(100 * 10 ** (-c / 9)), capped by the 95 left after validation
    assert counts["train"] == [95, 77, 59, 46, 35, 27, 21, 16, 12, 10]
    assert counts["val"] == [5] * 10 and counts["test"] == [20] * 10
    assert manifest["classes"][:2] == ["000.airplane", "001.automobile"]
    items = manifest["items"]
    train_ids = {name for name, _ in items["train"]}
    val_ids = {name for name, _ in items["val"]}
    assert not train_ids & val_ids and all(n.startswith("train/") for n in val_ids)
    assert all(n.startswith("test/") for n, _ in items["test"])
    # labels follow the archive, and the cache holds the archive's own pixels
    for name, label in items["train"][:50]:
        assert train[int(name.split("/")[1])] == label
    loaded = data.load_dataset(dcfg)
    first = int(items["val"][0][0].split("/")[1])
    img = loaded.splits["val"].images[0]
    assert (int(img[0, 0, 0]), int(img[0, 1, 0])) == (first // 256, first % 256)
    assert img.shape == (32, 32, 3)


def test_cifar100_reads_the_fine_label(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(100), 8)
    names = "\n".join(f"class{c}" for c in range(100)).encode()
    md5 = _tar(tmp_path / "cifar-100-binary.tar.gz", {
        "cifar-100-binary/train.bin": _records(labels, 2, rng),
        "cifar-100-binary/test.bin": _records(np.arange(100), 2, rng),
        "cifar-100-binary/fine_label_names.txt": names})
    monkeypatch.setitem(cifar.ARCHIVES, "cifar100",
                        dataclasses.replace(cifar.ARCHIVES["cifar100"], md5=md5))
    classes, items = cifar.split_items(_dcfg(tmp_path, variant="cifar100", val_per_class=2))
    assert len(classes) == 100 and classes[42] == "042.class42"
    assert sorted(label for _, label in items["test"]) == list(range(100))
    assert np.bincount([label for _, label in items["val"]]).tolist() == [2] * 100


def test_a_wrong_missing_or_pickled_archive_is_named(tmp_path, monkeypatch):
    with pytest.raises(DataUnavailable, match="cifar-10-binary.tar.gz not found; download "
                       "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"):
        cifar.prepare(_dcfg(tmp_path))
    make_cifar10(tmp_path, monkeypatch)
    monkeypatch.setitem(cifar.ARCHIVES, "cifar10", dataclasses.replace(
        cifar.ARCHIVES["cifar10"], md5="0" * 32))
    with pytest.raises(DataUnavailable, match="not the official 0000"):
        cifar.prepare(_dcfg(tmp_path))
    # the python (pickle) version: never unpickled, named as the wrong format
    other = tmp_path / "pickled"
    other.mkdir()
    _tar(other / "cifar-10-binary.tar.gz", {"cifar-10-batches-py/data_batch_1": b"\x80\x04."})
    cifar.read_archive.cache_clear()
    with pytest.raises(DataUnavailable, match="has no member cifar-10-batches-bin/data_batch_1"
                       ".bin \\(not the binary version"):
        cifar.read_archive(str(other / "cifar-10-binary.tar.gz"), "cifar10")


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_a_resnet32_run_on_cifar10_lt_reports_many_medium_few(tmp_path, monkeypatch):
    make_cifar10(tmp_path / "data", monkeypatch)
    out = tmp_path / "run"
    assert T.main(["--dataset", "cifar10_lt", "--experiment", "plain", "--loss", "ldam_drw",
                   "--seed", "1", "--out", str(out),
                   "--set", f"dataset.root={tmp_path / 'data'}",
                   "--set", "dataset.imbalance_ratio=10", "--set", "dataset.val_per_class=5",
                   "--set", "experiment.model=resnet32", "--set", "experiment.epochs=1",
                   "--set", "experiment.batch_size=64", "--set", "loss.scale=1.0",
                   "--set", "run.torch_threads=1", "--set", "run.num_workers=0"]) == 0
    s = _summary(out)
    assert s["num_classes"] == 10 and s["test_size"] == 200 and s["train_size"] == 398
    assert s["shot_thresholds"] == [20.0, 100.0]  # the field's, on a real benchmark
    assert s["shot_classes"] == [0, 7, 3] and s["many_shot_acc"] is None
    assert 0 <= s["few_shot_acc"] <= 1


# ----------------------------------------------------------------------------- list files
def make_list_tree(root):
    rng = np.random.default_rng(2)
    (root / "images").mkdir(parents=True)
    lines = {"train": [], "val": [], "test": []}
    for label, n in enumerate((30, 12, 4)):
        folder = root / "images" / f"c{label}"
        folder.mkdir()
        for i in range(n + 4):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                folder / f"{i}.png")
            split = "train" if i < n else ("val" if i < n + 2 else "test")
            lines[split].append(f"c{label}/{i}.png {label}")
    for split, rows in lines.items():
        (root / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return lines


def _list_dcfg(root):  # a dataset name of the user's own, with its kind
    return DatasetConfig.of(C.resolve_dataset("my_lt", {
        "kind": "image_list", "root": str(root), "image_dir": "images", "image_size": 16,
        "resize_size": 16}))


def test_list_files_make_the_split_and_nothing_leaves_the_tree(tmp_path):
    root = tmp_path / "lt"
    make_list_tree(root)
    manifest, _ = data.get_manifest(_list_dcfg(root))
    assert manifest["classes"] == ["0000", "0001", "0002"]
    assert manifest["counts"] == {"train": [30, 12, 4], "val": [2, 2, 2], "test": [2, 2, 2]}
    loaded = data.load_dataset(_list_dcfg(root))
    assert loaded.splits["train"].images.shape == (46, 16, 16, 3)

    (tmp_path / "secret.png").write_bytes((root / "images/c0/0.png").read_bytes())
    os.symlink(tmp_path / "secret.png", root / "images/c0/link.png")
    cases = {"../../secret.png 0": "leads outside the dataset tree",
             "c0/link.png 0": "leads outside the dataset tree",
             "/etc/passwd 0": "an absolute path",
             "c0/nope.png 0": "no such file",
             "c0/0.png zero": "is not `relative/path label`"}
    for k, (line, why) in enumerate(cases.items()):
        bad = tmp_path / f"bad{k}"
        make_list_tree(bad)
        os.symlink(tmp_path / "secret.png", bad / "images/c0/link.png")
        with open(bad / "val.txt", "a") as f:
            f.write(line + "\n")
        with pytest.raises(DataUnavailable, match=f"val.txt, line 7: .*{why}"):
            data.get_manifest(_list_dcfg(bad))
    (root / "test.txt").unlink()
    with pytest.raises(DataUnavailable, match=r"list file\(s\) not found: test_list: "):
        data.get_manifest(_list_dcfg(root))


def test_the_fetch_command_downloads_and_checks_the_archive(tmp_path, monkeypatch):
    source = tmp_path / "mirror"
    make_cifar10(source, monkeypatch)
    url = (source / "cifar-10-binary.tar.gz").as_uri()
    path = cifar.fetch("cifar10", tmp_path / "data", url)
    assert path.read_bytes() == (source / "cifar-10-binary.tar.gz").read_bytes()
    monkeypatch.setitem(cifar.ARCHIVES, "cifar10", dataclasses.replace(
        cifar.ARCHIVES["cifar10"], md5="f" * 32))
    with pytest.raises(DataUnavailable, match="checksum mismatch"):
        cifar.fetch("cifar10", tmp_path / "other", url)
    assert not (tmp_path / "other/cifar-10-binary.tar.gz").exists()  # nothing half-written
