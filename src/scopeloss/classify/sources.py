"""The dataset interface of the data pipeline (as ``rl.envs.base.BatchedEnv`` is the envs'):
what one kind of image dataset provides, and the table of the kinds there are.

``scopeloss.classify.data`` builds every dataset the same way from its source: a manifest
of a fixed stratified split (``split_items``), then a decode-once uint8 cache per split —
from image files (``decodes_files``: decoded in parallel into a memory-mapped file) or from
the images the source makes itself (``images``). The cost plan counts images with
``image_count`` (numpy only: no torch, no PIL).

Each method receives the resolved dataset section typed (``params.DatasetConfig``, or
its kind's subclass). A new dataset is one module with a ``DatasetSource`` subclass, one
line in ``SOURCES`` and its declaration in ``scopeloss.params`` (its keys in
``CL_DATASET_KIND``, its name and defaults in ``DATASET_DEFAULTS``; keys of its own: a
``DatasetConfig`` subclass in ``params.DATASET_CONFIGS``); docs/CONTRACT.md describes
the recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from scopeloss.classify import cifar, image_list, standins
from scopeloss.classify.splits import SPLITS, stratified_split
from scopeloss.params import CifarLTConfig, DatasetConfig, ImageListConfig, LongTailConfig


class SplitItems(NamedTuple):
    """A dataset's split: class names and ``{split: [[relative name, label], ...]}``, the
    files skipped by its scan and why, and where item names are relative to."""

    classes: list[str]
    items: dict[str, list[list]]
    skipped: list[str]
    reasons: dict[str, str]
    source: str


class DatasetSource:
    """One kind of dataset (``kind``, the value of ``dataset.kind``)."""

    kind: str
    decodes_files = False  # True: items are image files under {root}/{source}

    def prepare(self, dcfg: DatasetConfig, *, download_missing: bool = False, **fetch) -> None:
        """Make the raw data present (or raise DataUnavailable saying where to put it)."""

    def manifest_tag(self, dcfg: DatasetConfig) -> str:
        """What besides the split settings names its manifest (the keys that change it)."""
        return ""

    def split_items(self, dcfg: DatasetConfig) -> SplitItems:
        raise NotImplementedError

    def image_count(self, dcfg: DatasetConfig) -> int:
        """Images before the split."""
        raise NotImplementedError

    def class_count(self, dcfg: DatasetConfig) -> int:
        """Classes (the model's head), known before the data is there (the disk plan)."""
        raise NotImplementedError

    def images(self, dcfg: DatasetConfig, items: list, size: int) -> np.ndarray:
        """uint8 RGB (N, size, size, 3) of ``items``, for a source that makes its images."""
        raise NotImplementedError


class Caltech256(DatasetSource):
    """Griffin et al. 2007: 256 object classes and clutter, image files in class folders."""

    kind = "caltech256"
    decodes_files = True
    IMAGES = 30607  # before the split, the clutter class included

    def prepare(self, dcfg: DatasetConfig, *, download_missing=False, **fetch):
        from scopeloss.classify.caltech import ensure_caltech256

        ensure_caltech256(dcfg.root, download_missing=download_missing, **fetch)

    def split_items(self, dcfg: DatasetConfig):
        from scopeloss.classify.caltech import caltech_paths, scan_caltech

        folder = caltech_paths(dcfg.root)[1]
        reasons: dict[str, str] = {}
        classes, items, skipped = scan_caltech(folder, reasons)
        parts = stratified_split([label for _, label in items], dcfg.val_fraction,
                                 dcfg.test_fraction, dcfg.split_seed)
        return SplitItems(classes, {s: [list(items[i]) for i in parts[s]] for s in SPLITS},
                          skipped, reasons, folder.relative_to(Path(dcfg.root)).as_posix())

    def image_count(self, dcfg: DatasetConfig):
        return self.IMAGES

    def class_count(self, dcfg: DatasetConfig):
        return 257  # 256 object classes and clutter


class DigitsStandIn(DatasetSource):
    """The offline long-tailed stand-ins made from scikit-learn's digits
    (``scopeloss.classify.standins``: digits_lt, numbers_lt)."""

    def __init__(self, kind: str):
        self.kind = kind

    # Each method receives the kind's own section (DATASET_CONFIGS), narrower than the
    # base's DatasetConfig: the override is deliberate.
    def manifest_tag(self, dcfg: LongTailConfig):  # type: ignore[override]
        return f"-ratio{dcfg.imbalance_ratio}-max{dcfg.max_per_class}"

    def split_items(self, dcfg: LongTailConfig):  # type: ignore[override]
        classes, items = standins.split_items(dcfg)
        return SplitItems(classes, items, [], {}, standins.SOURCE)

    def image_count(self, dcfg: LongTailConfig):  # type: ignore[override]
        return standins.image_count(dcfg)

    def class_count(self, dcfg: LongTailConfig):  # type: ignore[override]
        return standins.NUMBER_CLASSES if self.kind == "numbers_lt" else 10

    def images(self, dcfg, items, size):
        return standins.images(self.kind, items, size)


class CifarLT(DatasetSource):
    """CIFAR-10-LT / CIFAR-100-LT from the binary archives (``scopeloss.classify.cifar``)."""

    kind = "cifar_lt"

    def prepare(self, dcfg: CifarLTConfig, *, download_missing=False,  # type: ignore[override]
                **fetch):
        cifar.prepare(dcfg, download_missing=download_missing, **fetch)

    def manifest_tag(self, dcfg: CifarLTConfig):  # type: ignore[override]
        return f"-{dcfg.variant}-ratio{dcfg.imbalance_ratio}-val{dcfg.val_per_class}"

    def split_items(self, dcfg: CifarLTConfig):  # type: ignore[override]
        classes, items = cifar.split_items(dcfg)
        return SplitItems(classes, items, [], {}, cifar.ARCHIVES[dcfg.variant].file)

    def image_count(self, dcfg: CifarLTConfig):  # type: ignore[override]
        spec = cifar.ARCHIVES[dcfg.variant]  # train (profile) + validation + the test set
        return int(cifar.class_counts(dcfg).sum()) + spec.classes * dcfg.val_per_class + 10000

    def class_count(self, dcfg: CifarLTConfig):  # type: ignore[override]
        return cifar.ARCHIVES[dcfg.variant].classes

    def images(self, dcfg: CifarLTConfig, items, size):  # type: ignore[override]
        return cifar.images(dcfg, items, size)


class ImageList(DatasetSource):
    """ImageNet-LT, Places-LT, iNaturalist 2018 and their kind: a root with train / val /
    test list files of ``relative/path label`` (``scopeloss.classify.image_list``)."""

    kind = "image_list"
    decodes_files = True

    def prepare(self, dcfg: ImageListConfig, **fetch):  # type: ignore[override]
        image_list.check_lists(dcfg)

    def manifest_tag(self, dcfg: ImageListConfig):  # type: ignore[override]
        return "-" + image_list.lists_digest(dcfg)

    def split_items(self, dcfg: ImageListConfig):  # type: ignore[override]
        classes, items = image_list.split_items(dcfg)
        return SplitItems(classes, items, [], {}, dcfg.image_dir)

    def image_count(self, dcfg: ImageListConfig):  # type: ignore[override]
        return image_list.image_count(dcfg)

    def class_count(self, dcfg: ImageListConfig):  # type: ignore[override]
        return image_list.class_count(dcfg)


SOURCES: dict[str, DatasetSource] = {
    "caltech256": Caltech256(), "cifar_lt": CifarLT(), "image_list": ImageList(),
    **{kind: DigitsStandIn(kind) for kind in standins.KINDS},
}


def get(kind: str) -> DatasetSource:
    if kind not in SOURCES:
        raise ValueError(f"dataset.kind {kind!r} has no source; known: {', '.join(SOURCES)}")
    return SOURCES[kind]
