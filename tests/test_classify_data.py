"""Caltech-256 layout, split manifest, decode-once cache, archive fetch/verify/extract, the
offline stand-ins digits_lt and numbers_lt."""

import hashlib
import io as _io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from scopeloss.classify import caltech, standins
from scopeloss.classify import data as D
from scopeloss.classify.config import DATASETS
from scopeloss.config_keys import merge
from scopeloss.params import DatasetConfig
from cli import exit_code

# Skewed class sizes, like Caltech's 80..827 (small).
COUNTS = {"001.ak47": 30, "002.american-flag": 12, "003.backpack": 6, "257.clutter": 20}


def _write_tree(folder):
    rng = np.random.default_rng(0)
    for name, n in COUNTS.items():
        cdir = folder / name
        cdir.mkdir(parents=True)
        for i in range(n):
            h, w = rng.integers(40, 90, size=2)
            arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).save(cdir / f"{name[:3]}_{i + 1:04d}.jpg", quality=90)
    # One grayscale image (Caltech has a few), one stray non-image file, a fake .jpg.
    Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8), mode="L").save(
        folder / "002.american-flag" / "002_0099.jpg")
    (folder / "003.backpack" / "RENAME2").write_text("not an image")
    (folder / "001.ak47" / "broken.jpg").write_bytes(b"this is no jpeg")


def _cfg(root, **over):
    return merge(DATASETS["caltech256"], {"root": str(root), "resize_size": 40,
                                           "image_size": 32, **over})


@pytest.fixture()
def caltech_root(tmp_path):
    _write_tree(tmp_path / "caltech256" / caltech.CALTECH_FOLDER)
    return tmp_path


def test_tree_loads_with_labels_classes_and_split_proportions(caltech_root):
    cfg = _cfg(caltech_root)
    manifest, path = D.get_manifest(cfg)
    assert manifest["classes"] == list(COUNTS)  # folder order, clutter included
    assert sorted(manifest["skipped"]) == ["001.ak47/broken.jpg", "003.backpack/RENAME2"]
    totals = np.sum([manifest["counts"][s] for s in D.SPLITS], axis=0)
    assert totals.tolist() == [30, 13, 6, 20]  # + the grayscale image
    # Per class: round(n * 0.2) test, round(n * 0.1) val (at least 1 each), rest train.
    assert manifest["counts"]["test"] == [6, 3, 1, 4]
    assert manifest["counts"]["val"] == [3, 1, 1, 2]
    assert manifest["counts"]["train"] == [21, 9, 4, 14]
    for split in D.SPLITS:
        for rel, label in manifest["items"][split]:
            assert manifest["classes"][label] == rel.split("/")[0]
    all_paths = [rel for s in D.SPLITS for rel, _ in manifest["items"][s]]
    assert len(all_paths) == len(set(all_paths)) == 69

    # Stable: a second call reads the same file; rebuilding from scratch gives the same split.
    text = path.read_text()
    assert D.get_manifest(cfg)[0] == manifest
    path.unlink()
    D.get_manifest(cfg)
    assert path.read_text() == text
    # Another split seed gives another split of the same items.
    other, _ = D.get_manifest(_cfg(caltech_root, split_seed=1))
    assert other["counts"] == manifest["counts"] and other["hash"] != manifest["hash"]


def test_cache_decodes_once_to_rgb_squares(caltech_root):
    cfg = _cfg(caltech_root)
    ds = D.load_dataset(cfg, num_workers=0)
    train = ds.splits["train"]
    assert train.images.shape == (48, 40, 40, 3) and train.images.dtype == np.uint8
    assert train.labels.tolist() == sorted(train.labels.tolist())  # manifest order
    # The cached image equals decode_image of the file (shorter side 40, centre crop).
    manifest, _ = D.get_manifest(cfg)
    rel, _ = manifest["items"]["train"][0]
    np.testing.assert_array_equal(
        train.images[0], D.decode_image(caltech_root / "caltech256" / caltech.CALTECH_FOLDER / rel, 40))
    gray = D.decode_image(caltech_root / "caltech256" / caltech.CALTECH_FOLDER /
                          "002.american-flag/002_0099.jpg", 40)
    assert gray.shape == (40, 40, 3) and (gray[..., 0] == gray[..., 2]).all()
    # Later loads read the cache file, not the images.
    mtime = {s: D.cache_path(cfg, manifest, s).stat().st_mtime_ns for s in D.SPLITS}
    D.load_dataset(cfg, num_workers=0)
    assert {s: D.cache_path(cfg, manifest, s).stat().st_mtime_ns for s in D.SPLITS} == mtime


def _make_tar(tree_root, tar_path, extra=None):
    with tarfile.open(tar_path, "w") as tar:
        tar.add(tree_root / caltech.CALTECH_FOLDER, arcname=caltech.CALTECH_FOLDER)
        if extra:
            info = tarfile.TarInfo(extra)
            info.size = 3
            tar.addfile(info, _io.BytesIO(b"bad"))
    return hashlib.md5(tar_path.read_bytes()).hexdigest()


def test_download_verify_extract_and_manifest(tmp_path):
    src = tmp_path / "src"
    _write_tree(src / caltech.CALTECH_FOLDER)
    tar_path = tmp_path / "256_ObjectCategories.tar"
    md5 = _make_tar(src, tar_path)
    root = tmp_path / "data"
    # A file:// URL exercises the streaming download, the md5 check and the safe extraction.
    folder = caltech.ensure_caltech256(root, download_missing=True, url=tar_path.as_uri(), md5=md5)
    assert folder == root / "caltech256" / caltech.CALTECH_FOLDER
    assert (root / "caltech256" / caltech.CALTECH_ARCHIVE).is_file()
    manifest, _ = D.get_manifest(_cfg(root))
    assert manifest["classes"] == list(COUNTS) and sum(manifest["counts"]["train"]) == 48

    # A wrong checksum stops the download and leaves no archive behind.
    root2 = tmp_path / "data2"
    with pytest.raises(D.DataUnavailable, match="md5"):
        caltech.ensure_caltech256(root2, download_missing=True, url=tar_path.as_uri(), md5="0" * 32)
    assert not (root2 / "caltech256" / caltech.CALTECH_ARCHIVE).exists()
    # An archive placed by hand is verified and extracted without a download.
    (root2 / "caltech256").mkdir(parents=True, exist_ok=True)
    (root2 / "caltech256" / caltech.CALTECH_ARCHIVE).write_bytes(tar_path.read_bytes())
    assert caltech.ensure_caltech256(root2, download_missing=False, md5=md5).is_dir()


def test_unsafe_archive_member_is_refused(tmp_path):
    src = tmp_path / "src"
    _write_tree(src / caltech.CALTECH_FOLDER)
    tar_path = tmp_path / "evil.tar"
    md5 = _make_tar(src, tar_path, extra="../escape.txt")
    with pytest.raises(D.DataUnavailable, match="unsafe path"):
        caltech.ensure_caltech256(tmp_path / "data", download_missing=True, url=tar_path.as_uri(),
                            md5=md5)
    assert not (tmp_path / "data" / "escape.txt").exists()


def test_missing_data_says_where_to_put_it(tmp_path):
    archive, folder = caltech.caltech_paths(tmp_path)
    with pytest.raises(D.DataUnavailable) as err:
        D.get_manifest(_cfg(tmp_path))
    assert str(archive.resolve()) in str(err.value) and str(folder.resolve()) in str(err.value)
    # Unreachable URL (nothing listens on port 9 of localhost): same message, no hang.
    with pytest.raises(D.DataUnavailable) as err:
        caltech.ensure_caltech256(tmp_path, download_missing=True, url="http://127.0.0.1:9/x.tar",
                            timeout=5)
    assert "could not download" in str(err.value) and str(archive.resolve()) in str(err.value)
    assert not archive.exists()


def test_prepare_cli(tmp_path, caltech_root, capsys):
    assert D.main(["prepare", "--dataset", "caltech256", "--root", str(caltech_root),
                   "--no-download"]) == 0
    assert "4 classes, train/val/test = 48/7/14, skipped 2 files" in capsys.readouterr().out
    assert exit_code(D.main, ["prepare", "--dataset", "caltech256", "--root", str(tmp_path / "none"),
                   "--no-download"]) == 2
    assert "put the archive 256_ObjectCategories.tar" in capsys.readouterr().err
    assert exit_code(D.main, ["prepare", "--dataset", "imagenet", "--root", str(tmp_path)]) == 2
    assert ("unknown dataset 'imagenet'; allowed: caltech256, digits_lt, numbers_lt, cifar10_lt, "
            "cifar100_lt, or a name of your own") in capsys.readouterr().err


def test_digits_lt_is_long_tailed_and_split(tmp_path):
    cfg = merge(DATASETS["digits_lt"], {"root": str(tmp_path)})
    manifest, _ = D.get_manifest(cfg)
    totals = np.sum([manifest["counts"][s] for s in D.SPLITS], axis=0)
    expected = [int(np.floor(174 * 10 ** (-c / 9))) for c in range(10)]
    assert totals.tolist() == expected and expected[0] / expected[-1] == pytest.approx(10.2, 0.01)
    from sklearn.datasets import load_digits  # the count the plan uses without scikit-learn

    assert np.bincount(load_digits().target).tolist() == list(standins.DIGITS_PER_CLASS)
    assert all(np.array(manifest["counts"][s]).min() >= 1 for s in D.SPLITS)
    ds = D.load_dataset(cfg)
    x = ds.splits["train"].images
    assert x.shape[1:] == (32, 32, 3) and x.dtype == np.uint8 and x.max() > 200
    assert json.loads(D.manifest_path(cfg).read_text())["hash"] == ds.manifest_hash


def test_numbers_lt_is_long_tailed_split_and_composed_of_its_digits(tmp_path):
    """100 classes 00..99 with floor(40 * 10^(-rank/99)) images over a random ranking; no
    digit image in two splits; each image is the tens digit left, the ones digit right."""
    from sklearn.datasets import load_digits

    cfg = merge(DATASETS["numbers_lt"], {"root": str(tmp_path)})
    manifest, _ = D.get_manifest(cfg)
    totals = np.sum([manifest["counts"][s] for s in D.SPLITS], axis=0)
    assert len(manifest["classes"]) == 100 and manifest["classes"][37] == "037.number_37"
    assert sorted(totals, reverse=True) == sorted(
        int(np.floor(40 * 10 ** (-r / 99))) for r in range(100))[::-1]
    assert totals.max() == 40 and totals.min() == 4
    # the ranking is not the class order: frequency does not follow the digits
    assert not np.all(np.diff(totals) <= 0) and not np.all(np.diff(totals) >= 0)
    assert all(np.array(manifest["counts"][s]).min() >= 1 for s in D.SPLITS)
    digits = load_digits()
    used = {}
    for split in D.SPLITS:
        pairs = [tuple(map(int, rel.split("/")[1].split("-"))) for rel, _ in manifest["items"][split]]
        labels = [lab for _, lab in manifest["items"][split]]
        assert len(set(pairs)) == len(pairs)  # no image twice
        assert [10 * digits.target[i] + digits.target[j] for i, j in pairs] == labels
        used[split] = {i for pair in pairs for i in pair}
    assert not (used["train"] & used["test"]) and not (used["train"] & used["val"])
    assert not (used["val"] & used["test"])
    ds = D.load_dataset(cfg)
    x, (rel, _) = ds.splits["test"].images, manifest["items"]["test"][5]
    assert x.shape[1:] == (16, 16, 3) and x.dtype == np.uint8
    i, j = map(int, rel.split("/")[1].split("-"))
    assert np.array_equal(x[5, 4:12, :8, 0], np.round(digits.images[i] / 16 * 255))
    assert np.array_equal(x[5, 4:12, 8:, 1], np.round(digits.images[j] / 16 * 255))
    assert x[5, :4].max() == 0 and x[5, 12:].max() == 0
    assert standins.number_counts(DatasetConfig.of(cfg)).sum() == totals.sum()
    # the same config gives the same dataset
    assert D.build_manifest(cfg)["hash"] == manifest["hash"]


def test_fetch_runs_without_torch_and_says_where_to_put_the_archive(tmp_path):
    """`fetch` (the fetch_caltech256 rule, in the light envs/data.yaml) imports no torch,
    and without network it exits 2 naming where the archive goes."""
    import subprocess
    import sys

    code = ("import sys\nfrom scopeloss.classify import data\n"
            "try:\n"
            f"    data.main(['fetch', '--dataset', 'caltech256', '--root', {str(tmp_path)!r},"
            " '--url', 'http://127.0.0.1:9/256_ObjectCategories.tar'])\n"
            "finally:\n"
            "    print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == "False"
    assert "put the archive 256_ObjectCategories.tar" in proc.stderr


def test_a_class_folder_without_images_stops_naming_it(caltech_root):
    empty = caltech_root / "caltech256" / caltech.CALTECH_FOLDER / "258.nothing"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(D.DataUnavailable, match=r"with no image file: 258\.nothing"):
        D.get_manifest(_cfg(caltech_root))


# --- issue 29: the scan stays inside its tree ----------------------------------------------
def test_a_hostile_tree_is_scanned_without_leaving_it(tmp_path, monkeypatch):
    """Symlinks out of the tree (a file, a class folder, /etc/passwd), a dangling link, a
    nested folder, a stray top-level file and an image above the pixel budget: none is
    opened or used, each is listed under ``skipped`` with its reason."""
    from PIL import Image

    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(outside / "secret.jpg")
    (outside / "class").mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32)).save(outside / "class" / f"{i}.jpg")
    tree = tmp_path / "caltech256" / caltech.CALTECH_FOLDER
    _write_tree(tree)
    links = tree / "007.links"
    links.mkdir()
    Image.new("RGB", (32, 32)).save(links / "own.jpg")
    (links / "link_outside.jpg").symlink_to("../../../outside/secret.jpg")
    (links / "passwd.jpg").symlink_to("/etc/passwd")
    (links / "dangling.jpg").symlink_to("nowhere.jpg")
    (links / "inside_link.jpg").symlink_to("own.jpg")  # stays inside: followed
    (links / "nested").mkdir()
    Image.new("RGB", (32, 32)).save(links / "nested" / "deep.jpg")
    (tree / "008.elsewhere").symlink_to(outside / "class")
    (tree / "README.txt").write_text("not a class")
    monkeypatch.setattr(caltech, "MAX_PIXELS", 100 * 100)
    Image.new("RGB", (120, 120)).save(links / "huge.png")
    opened = []
    real_problem = caltech.image_problem
    monkeypatch.setattr(caltech, "image_problem",
                        lambda p, *a, **k: opened.append(os.path.realpath(p)) or real_problem(p, *a, **k))
    reasons = {}
    classes, items, skipped = caltech.scan_caltech(tree, reasons)
    assert "008.elsewhere" not in classes and "007.links" in classes
    used = {rel for rel, _ in items}
    assert {"007.links/own.jpg", "007.links/inside_link.jpg"} <= used
    assert not any(r.startswith("008.") or "secret" in r or "passwd" in r for r in used)
    assert all(p.startswith(str(tree.resolve())) for p in opened)  # nothing outside opened
    assert "symlink to outside" in reasons["007.links/link_outside.jpg"]
    assert "symlink to outside" in reasons["007.links/passwd.jpg"]
    assert "symlink to outside" in reasons["008.elsewhere"]
    assert "dangling symlink" in reasons["007.links/dangling.jpg"]
    assert "folder inside a class folder" in reasons["007.links/nested"]
    assert "not a class folder" in reasons["README.txt"]
    assert "above the budget" in reasons["007.links/huge.png"]
    assert set(reasons) == set(skipped)


def test_an_empty_class_stops_the_scan_before_any_image_is_decoded(tmp_path, monkeypatch):
    tree = tmp_path / "caltech256" / caltech.CALTECH_FOLDER
    _write_tree(tree)
    (tree / "009.empty").mkdir()
    (tree / "009.empty" / "notes.txt").write_text("x")
    monkeypatch.setattr(caltech, "image_problem", lambda *a, **k: pytest.fail("decoded an image"))
    with pytest.raises(D.DataUnavailable, match="009.empty"):
        caltech.scan_caltech(tree)


def test_an_image_above_the_pixel_budget_is_not_decoded(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    assert "300x200 pixels, above the budget of 50,000" in caltech.image_problem(path, max_pixels=50_000)


def test_every_declared_dataset_kind_has_a_source():
    """The dataset interface: a kind the declarations allow is one the pipeline can build."""
    from scopeloss import params
    from scopeloss.classify import sources

    assert set(sources.SOURCES) == set(params.CL_DATASET["kind"].choices)
    assert all(s.kind == k for k, s in sources.SOURCES.items())
    assert set(params.CL_DATASET_KIND) == set(sources.SOURCES)
