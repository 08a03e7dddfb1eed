"""Datasets of the classification runs: each kind behind the interface of
``scopeloss.classify.sources`` (Caltech-256; the offline stand-ins digits_lt and numbers_lt
of ``scopeloss.classify.standins``), built the same way: a fixed stratified split saved as a
manifest, and a decode-once image cache.

Caltech-256 lives at ``{root}/caltech256/256_ObjectCategories/NNN.name/*.jpg`` (torchvision's
layout): 257 folders including ``257.clutter``, labels 0..256 in folder order. Files whose
extension is not an image's, or that PIL cannot decode completely (the scan decodes every
image, so a truncated PNG or JPEG is caught here and not in a later cache build), are skipped
and listed in the manifest with the reason; grayscale and CMYK images are converted to RGB.

The manifest (``{root}/manifests/{kind}-...json``) is written once, atomically, under a file
lock, and every run reuses it: relative paths and labels per split, and per-class counts.

Decode once: every image is decoded, converted to RGB, its shorter side resized to
``resize_size`` (antialiased bilinear) and centre-cropped to a ``resize_size`` square, then
stored as uint8 (N, S, S, 3) in a ``.npy`` file per split keyed by the manifest hash and the
size, under the run setting ``cache_dir`` (default ``{root}/cache``). Training always
memory-maps it (concurrent runs share the page cache, no private copy per process) and
augments batches on the training device (``scopeloss.classify.augment``); evaluation
centre-crops ``image_size``.

CLI: ``python -m scopeloss.classify.data prepare --dataset caltech256 --root data/``
fetches and verifies the archive when the tree is absent, extracts it and writes the manifest.
``prepare --dataset NAME --hparams H --run R --index OUT.json`` (the workflow's data job)
also builds the cache of every split, then writes the small index ``OUT.json`` atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from scopeloss import atomic, lifecycle
from scopeloss.classify import sources
from scopeloss.classify.caltech import CALTECH_URL, ensure_caltech256
from scopeloss.classify.errors import DataUnavailable, DecodeError  # noqa: F401
from scopeloss.classify.splits import SPLITS
from scopeloss.params import DatasetConfig

MANIFEST_VERSION = 3  # 2: the scan decodes images fully; skipped files carry a reason;
# 3: the scan stays inside its tree and lists every entry it drops


# --- manifest ---------------------------------------------------------------------------
def manifest_path(dcfg: DatasetConfig | Mapping) -> Path:
    dcfg = DatasetConfig.of(dcfg)
    name = (f"{dcfg.kind}-seed{dcfg.split_seed}-val{dcfg.val_fraction}"
            f"-test{dcfg.test_fraction}") + sources.get(dcfg.kind).manifest_tag(dcfg)
    return Path(dcfg.root) / "manifests" / f"{name}.json"


def _items_hash(items: dict) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


def build_manifest(dcfg: DatasetConfig | Mapping, *, download_missing: bool = False,
                   **fetch) -> dict:
    """The split of ``dcfg``'s dataset, from its source (``sources``), as a manifest."""
    dcfg = DatasetConfig.of(dcfg)
    data_source = sources.get(dcfg.kind)
    data_source.prepare(dcfg, download_missing=download_missing, **fetch)
    classes, split_items, skipped, reasons, source = data_source.split_items(dcfg)
    counts = {s: np.bincount([lab for _, lab in split_items[s]], minlength=len(classes)).tolist()
              for s in SPLITS}
    return {
        "version": MANIFEST_VERSION,
        "kind": dcfg.kind,
        "source": source,  # paths are relative to {root}/{source} (caltech256)
        "classes": classes,
        "split_seed": dcfg.split_seed,
        "val_fraction": dcfg.val_fraction,
        "test_fraction": dcfg.test_fraction,
        "counts": counts,
        "skipped": skipped,
        "skipped_reasons": reasons,
        "hash": _items_hash(split_items),
        "items": split_items,
    }


def get_manifest(dcfg: DatasetConfig | Mapping, *, download_missing: bool = False,
                 **fetch) -> tuple[dict, Path]:
    """The dataset's manifest, built and written on first use and reused afterwards."""
    dcfg = DatasetConfig.of(dcfg)
    path = manifest_path(dcfg)

    def current() -> bool:  # a manifest of an older scan (version) is rebuilt
        if not path.is_file():
            return False
        try:
            return json.loads(path.read_text()).get("version") == MANIFEST_VERSION
        except (json.JSONDecodeError, OSError, AttributeError):
            return False

    # The manifest alone is not the data: the images must still be there. Checked first, so
    # that a root without them is refused before anything is written there.
    sources.get(dcfg.kind).prepare(dcfg, download_missing=download_missing, **fetch)
    if not current():
        with atomic.exclusive_lock(path.with_suffix(".lock")):
            if not current():
                manifest = build_manifest(dcfg, download_missing=download_missing, **fetch)
                atomic.write_json(path, manifest)
    return json.loads(path.read_text()), path


# --- decode-once cache ------------------------------------------------------------------
def decode_image(path, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3): shorter side -> size (antialiased bilinear), centre crop."""
    from PIL import Image

    with Image.open(path) as f:
        f.draft("RGB", (size, size))  # JPEG: decode at a reduced scale still >= size
        im = f.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.array(im, dtype=np.uint8)  # a writable copy


def _decode_job(args):
    path, size = args
    try:
        return decode_image(path, size)
    except Exception as err:  # name the file: a half-written cache is useless without it
        raise DecodeError(f"cannot decode {path}: {type(err).__name__}: {err} (the manifest "
                          "lists it; delete or replace the file and the manifest)") from None


def cache_path(dcfg: DatasetConfig | Mapping, manifest: dict, split: str,
               cache_dir=None) -> Path:
    """Where ``split``'s cache lives: ``cache_dir`` (a run setting), default {root}/cache."""
    dcfg = DatasetConfig.of(dcfg)
    cache_dir = Path(cache_dir or Path(dcfg.root) / "cache")
    return cache_dir / f"{manifest['kind']}-{manifest['hash'][:16]}-{dcfg.resize_size}px-{split}.npy"


def build_cache(dcfg: DatasetConfig | Mapping, manifest: dict, split: str, num_workers: int = 0,
                cache_dir=None) -> Path:
    """Decode and resize every image of ``split`` once into a uint8 .npy file (atomic)."""
    dcfg = DatasetConfig.of(dcfg)
    path = cache_path(dcfg, manifest, split, cache_dir)
    if path.is_file():
        return path
    with atomic.exclusive_lock(path.with_suffix(".lock")):
        if path.is_file():
            return path
        items, size = manifest["items"][split], dcfg.resize_size
        t0 = time.perf_counter()
        nbytes = len(items) * size * size * 3
        with atomic.atomic_path(path, size=nbytes, label="the image cache ") as tmp:
            data_source = sources.get(manifest["kind"])
            if data_source.decodes_files:
                # the whole file reserved first: a full disk is an OSError here, not a SIGBUS
                # when a memory-mapped page cannot be backed
                with open(tmp, "wb") as f:
                    os.posix_fallocate(f.fileno(), 0, nbytes + 4096)
            if not data_source.decodes_files:
                with open(tmp, "wb") as f:  # np.save(path) would append ".npy" to the name
                    np.save(f, data_source.images(dcfg, items, size))
            else:
                base = Path(dcfg.root) / manifest["source"]
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                                shape=(len(items), size, size, 3))
                jobs = [(str(base / rel), size) for rel, _ in items]
                if num_workers > 0:
                    # fork, as PyTorch's DataLoader workers: the children only run PIL.
                    with ProcessPoolExecutor(num_workers, mp_context=get_context("fork")) as ex:
                        for i, img in enumerate(ex.map(_decode_job, jobs, chunksize=64)):
                            out[i] = img
                else:
                    for i, job in enumerate(jobs):
                        out[i] = _decode_job(job)
                out.flush()
                del out
        print(f"cached {len(items)} {split} images at {size}px in "
              f"{time.perf_counter() - t0:.1f}s -> {path}", file=sys.stderr)
    return path


@dataclass
class Split:
    images: np.ndarray   # uint8 (N, S, S, 3), memory-mapped (read-only)
    labels: np.ndarray   # int64 (N,)


@dataclass
class Dataset:
    classes: list[str]
    splits: dict[str, Split]
    counts: dict[str, list[int]]
    manifest_path: Path
    manifest_hash: str
    cache_paths: dict[str, str]


def load_dataset(dcfg: DatasetConfig | Mapping, *, num_workers: int = 0, cache_dir=None,
                 download_missing: bool = False) -> Dataset:
    """Manifest + cache for every split (built where missing, under locks), memory-mapped:
    concurrent runs on one machine share the page cache instead of each holding a copy."""
    dcfg = DatasetConfig.of(dcfg)
    manifest, mpath = get_manifest(dcfg, download_missing=download_missing)
    splits, paths = {}, {}
    for split in SPLITS:
        path = build_cache(dcfg, manifest, split, num_workers=num_workers, cache_dir=cache_dir)
        images = np.load(path, mmap_mode="r")
        labels = np.array([lab for _, lab in manifest["items"][split]], dtype=np.int64)
        if len(images) != len(labels):
            raise RuntimeError(f"cache {path} holds {len(images)} images, manifest {len(labels)}:"
                               " delete the cache file")
        splits[split], paths[split] = Split(images, labels), str(path)
    return Dataset(manifest["classes"], splits, manifest["counts"], mpath, manifest["hash"], paths)


# --- CLI ---------------------------------------------------------------------------------
def write_index(path, dcfg: DatasetConfig | Mapping, ds: Dataset) -> dict:
    """The small JSON the workflow's data job declares as its output (written atomically,
    after the manifest and every cache file exist)."""
    dcfg = DatasetConfig.of(dcfg)
    index = {
        "kind": dcfg.kind,
        "manifest": str(ds.manifest_path),
        "manifest_hash": ds.manifest_hash,
        "num_classes": len(ds.classes),
        "counts": {s: len(ds.splits[s].labels) for s in SPLITS},
        "cache": dict(ds.cache_paths),
        "resize_size": dcfg.resize_size,
    }
    atomic.write_json(path, index)
    return index


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.classify.data",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download and check a dataset's archive (Caltech-256: "
                           "also extract it; imports no torch: the workflow runs it in a "
                           "light env)")
    fetch.add_argument("--dataset", required=True, choices=["caltech256", "cifar10", "cifar100"])
    fetch.add_argument("--root", default="data", help="data directory")
    fetch.add_argument("--url", default=None, help="the archive's URL (default: the official)")
    prep = sub.add_parser("prepare", help="fetch/verify/extract the data, write the manifest "
                          "(and with --cache or --index the decoded cache of every split)")
    prep.add_argument("--dataset", required=True, help="caltech256, digits_lt or numbers_lt")
    prep.add_argument("--root", default=None,
                      help="data directory (default: the --hparams dataset.root, else data)")
    prep.add_argument("--url", default=None, help="the archive's URL (default: the official)")
    prep.add_argument("--no-download", action="store_true", help="never fetch the archive")
    prep.add_argument("--cache", action="store_true", help="also build the decode-once cache")
    prep.add_argument("--resize-size", type=int, default=None, help="cache size (pixels)")
    prep.add_argument("--num-workers", type=int, default=None,
                      help="decode processes (default: the --run num_workers, else 2)")
    prep.add_argument("--hparams", default=None,
                      help="a run's --hparams JSON (inline or file): its dataset section is used")
    prep.add_argument("--run", default=None,
                      help="run settings JSON (inline or file): cache_dir, num_workers are used")
    prep.add_argument("--index", default=None, metavar="OUT.json",
                      help="build the manifest and every split's cache, then write this index")
    return parser


def _prepare(args: argparse.Namespace) -> None:
    """``prepare``: the dataset section resolved as a job's, the manifest, the cache."""
    from scopeloss.classify import config as C

    over = C.load_hparams(args.hparams).get("dataset", {})
    if not isinstance(over, dict):
        raise C.ConfigError(f"section 'dataset' must be a mapping, got {over!r}")
    over = {**over, **({"root": args.root} if args.root is not None else {}),
            **({"resize_size": args.resize_size} if args.resize_size else {})}
    dcfg = DatasetConfig.of(C.resolve_dataset(args.dataset, over))
    run = C.resolve_run(None, C.load_run(args.run))
    lifecycle.ensure_dir(dcfg.root, "--root" if args.root is not None else "dataset.root")
    if run["cache_dir"]:
        lifecycle.ensure_dir(run["cache_dir"], "run.cache_dir")
    workers = args.num_workers if args.num_workers is not None else (
        run["num_workers"] if args.run else 2)
    manifest, path = get_manifest(dcfg, download_missing=not args.no_download,
                                  **({"url": args.url} if args.url else {}))
    counts = [sum(manifest["counts"][s]) for s in SPLITS]
    print(f"{path}: {len(manifest['classes'])} classes, train/val/test = "
          f"{counts[0]}/{counts[1]}/{counts[2]}, skipped {len(manifest['skipped'])} files")
    for rel, why in manifest.get("skipped_reasons", {}).items():
        print(f"  skipped {rel}: {why}", file=sys.stderr)
    if args.index:
        ds = load_dataset(dcfg, num_workers=workers, cache_dir=run["cache_dir"],
                          download_missing=not args.no_download)
        write_index(args.index, dcfg, ds)
        print(f"{args.index}: cache at {Path(ds.cache_paths['train']).parent}")
    elif args.cache:
        for split in SPLITS:
            build_cache(dcfg, manifest, split, num_workers=workers, cache_dir=run["cache_dir"])


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch" and args.dataset == "caltech256":
            folder = ensure_caltech256(args.root, download_missing=True,
                                       url=args.url or CALTECH_URL)
            print(f"{folder}: ready")
        elif args.command == "fetch":
            from scopeloss.classify import cifar

            print(f"{cifar.fetch(args.dataset, args.root, args.url)}: ready (md5 checked)")
        else:
            _prepare(args)
    # ConfigError is a ValueError; OSError: an unreadable tree, a full disk, a read-only cache
    except (DataUnavailable, ValueError, OSError) as err:
        parser.error(str(err))
    return 0


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """Validate labels once, on the host, where data enters (not per step on the device)."""
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataUnavailable(f"{where}: labels must lie in [0, {num_classes - 1}], got "
                              f"min {labels.min()}, max {labels.max()}")


if __name__ == "__main__":
    sys.exit(main())
