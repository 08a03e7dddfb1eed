"""Every default of the classification runs, in one place, and the resolver that checks them.

A run's hyperparameters are ``{"dataset": {...}, "experiment": {...}, "loss": {...}}``
(docs/CONTRACT.md). ``resolve`` starts from the built-in spec of the named dataset and
experiment, overlays the ``--hparams`` JSON and then each ``--set section.key=value``, and
rejects any unknown section or key by name, listing the allowed ones.

Values the paper gives: plain = Adam lr 1e-3, no augmentation, best-validation checkpoint;
augmented = SGD lr 1e-2, 100 epochs, cosine decay to 0, Table 5 augmentation; the loss
parameters of Table 4 (``scopeloss.losses.SUPERVISED_DEFAULTS``). Everything marked
"our choice" below is not in the paper.
"""

from __future__ import annotations

import copy
from typing import Any


from scopeloss.losses import SUPERVISED_LOSSES
from scopeloss.overrides import load_hparams, parse_set  # noqa: F401  (re-exported for the CLI)

# --- datasets ---------------------------------------------------------------------------
DATASETS: dict[str, dict[str, Any]] = {
    "caltech256": {
        "kind": "caltech256",
        "root": "data",            # tree at {root}/caltech256/256_ObjectCategories (torchvision's layout)
        "image_size": 224,         # model input (our choice: the ResNet standard)
        "resize_size": 256,        # cached square: shorter side -> 256, centre crop (our choice)
        "val_fraction": 0.1,       # stratified split fractions (our choice; the paper gives none)
        "test_fraction": 0.2,
        "split_seed": 0,           # one fixed split for every run
        "cache_dir": None,         # None = {root}/cache
    },
    "digits_lt": {
        "kind": "digits_lt",
        "root": "data",
        "image_size": 32,          # 8x8 digits upscaled to small RGB images
        "resize_size": 32,
        "val_fraction": 0.15,
        "test_fraction": 0.25,     # larger than Caltech's so tail classes keep a few test images
        "split_seed": 0,
        "cache_dir": None,
        "imbalance_ratio": 10.0,   # Caltech-256: 827 / 80 ~ 10, exponential profile
        "max_per_class": 174,      # head class size = the smallest digits class (174 images)
    },
}

# Table 5 of the paper: enhancement factors ~ N(mean, std), clamped to >= 0; uniform random
# crop (position); horizontal flip Bernoulli(0.5). crop_padding (our choice) zero-pads the
# cached image before the crop, for sets cached at the model's input size (digits_lt).
AUGMENTATION: dict[str, Any] = {
    "color": [1.0, 0.3],       # PIL ImageEnhance.Color == saturation
    "contrast": [1.0, 0.1],
    "brightness": [1.0, 0.1],
    "sharpness": [1.0, 0.3],
    "crop_padding": 0,
    "flip_p": 0.5,
}

_RUNTIME = {
    "device": "auto",          # auto | cpu | cuda
    "bf16": True,              # autocast bf16; only acts on cuda
    "channels_last": True,     # only acts on cuda
    "compile": False,          # torch.compile the model
    "checkpoint_every": 1,     # epochs between resume checkpoints in DIR/.ckpt/
    "num_workers": None,       # processes decoding images into the cache once (0 = in-process,
                               # None = min(8, CPU count))
    "torch_threads": None,     # CPU threads for torch (None = torch's default)
}

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "plain": {
        "model": "resnet101",
        "optimizer": "adam",
        "lr": 1.0e-3,                 # paper, Table 4
        "momentum": 0.9,              # unused by Adam
        "weight_decay": 0.0,          # our choice (the paper mentions none)
        "schedule": "constant",
        "epochs": 100,                # our choice: "train to convergence" = budget ...
        "early_stopping_patience": 10,  # ... plus early stopping on validation accuracy
        "batch_size": 64,             # our choice
        "augment": False,
        "augmentation": copy.deepcopy(AUGMENTATION),
        **_RUNTIME,
    },
    "augmented": {
        "model": "resnet101",
        "optimizer": "sgd",
        "lr": 1.0e-2,                 # paper, Table 5
        "momentum": 0.9,              # our choice
        "weight_decay": 1.0e-4,       # our choice (torchvision's ResNet recipe)
        "schedule": "cosine",         # paper: cosine decay to 0 over the epoch budget
        "epochs": 100,                # paper, Table 5
        "early_stopping_patience": None,
        "batch_size": 64,             # our choice
        "augment": True,
        "augmentation": copy.deepcopy(AUGMENTATION),
        **_RUNTIME,
    },
}

LOSS_KEYS = ("alpha", "gamma")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")
SECTIONS = ("dataset", "experiment", "loss")


class ConfigError(ValueError):
    """A bad key or value in the classification hyperparameters."""


def _check_name(what: str, name: str, allowed) -> None:
    if name not in allowed:
        raise ConfigError(f"unknown {what} {name!r}; allowed: {', '.join(allowed)}")


def _merge(base: dict, over: dict, where: str) -> dict:
    """Overlay ``over`` on ``base`` key by key; a key ``base`` lacks is an error."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in base:
            raise ConfigError(f"unknown key {where}.{key}; allowed: {', '.join(sorted(base))}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key} must be a mapping, got {value!r}")
            out[key] = _merge(base[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve(dataset: str, experiment: str, loss: str, hparams: dict | None = None,
            sets: dict | None = None) -> dict:
    """The full, checked hyperparameters of one run."""
    _check_name("dataset", dataset, DATASETS)
    _check_name("experiment", experiment, EXPERIMENTS)
    _check_name("loss", loss, SUPERVISED_LOSSES)
    base = {"dataset": DATASETS[dataset], "experiment": EXPERIMENTS[experiment],
            "loss": {"alpha": None, "gamma": None}}
    cfg = copy.deepcopy(base)
    for source in (hparams or {}), (sets or {}):
        for section, values in source.items():
            if section not in SECTIONS:
                raise ConfigError(f"unknown section {section!r}; allowed: {', '.join(SECTIONS)}")
            if not isinstance(values, dict):
                raise ConfigError(f"section {section!r} must be a mapping, got {values!r}")
            cfg[section] = _merge(cfg[section], values, section)
    check(cfg, dataset)
    return cfg


def check(cfg: dict, dataset: str) -> None:
    d, e = cfg["dataset"], cfg["experiment"]
    if d["kind"] != DATASETS[dataset]["kind"]:
        raise ConfigError(f"dataset.kind {d['kind']!r} does not match --dataset {dataset!r}")
    for key in ("image_size", "resize_size"):
        if not (isinstance(d[key], int) and d[key] > 0):
            raise ConfigError(f"dataset.{key} must be a positive integer, got {d[key]!r}")
    if d["resize_size"] < d["image_size"]:
        raise ConfigError(f"dataset.resize_size ({d['resize_size']}) must be >= "
                          f"dataset.image_size ({d['image_size']})")
    v, t = d["val_fraction"], d["test_fraction"]
    if not (0 < v < 1 and 0 < t < 1 and v + t < 1):
        raise ConfigError(f"dataset.val_fraction ({v}) and dataset.test_fraction ({t}) must "
                          "lie in (0, 1) and sum to less than 1")
    if d["kind"] == "digits_lt":
        if not d["imbalance_ratio"] >= 1:
            raise ConfigError(f"dataset.imbalance_ratio must be >= 1, got {d['imbalance_ratio']}")
        if not (isinstance(d["max_per_class"], int) and 3 <= d["max_per_class"] <= 174):
            raise ConfigError("dataset.max_per_class must be an integer in [3, 174] (the "
                              f"smallest digits class), got {d['max_per_class']!r}")
    _check_name("experiment.optimizer", e["optimizer"], OPTIMIZERS)
    _check_name("experiment.schedule", e["schedule"], SCHEDULES)
    _check_name("experiment.device", e["device"], DEVICES)
    w = e["num_workers"]
    if w is not None and not (isinstance(w, int) and w >= 0):
        raise ConfigError(f"experiment.num_workers must be null or an integer >= 0, got {w!r}")
    t = e["torch_threads"]
    if t is not None and not (isinstance(t, int) and t > 0):
        raise ConfigError(f"experiment.torch_threads must be null or a positive integer, got {t!r}")
    for key in ("epochs", "batch_size", "checkpoint_every"):
        if not (isinstance(e[key], int) and e[key] > 0):
            raise ConfigError(f"experiment.{key} must be a positive integer, got {e[key]!r}")
    p = e["early_stopping_patience"]
    if p is not None and not (isinstance(p, int) and p > 0):
        raise ConfigError(f"experiment.early_stopping_patience must be null or a positive "
                          f"integer, got {p!r}")
    if not e["lr"] > 0:
        raise ConfigError(f"experiment.lr must be positive, got {e['lr']!r}")
    a = e["augmentation"]
    for key in ("color", "contrast", "brightness", "sharpness"):
        pair = a[key]
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[1] >= 0):
            raise ConfigError(f"experiment.augmentation.{key} must be [mean, std] with std >= 0, "
                              f"got {pair!r}")
    if not 0 <= a["flip_p"] <= 1:
        raise ConfigError(f"experiment.augmentation.flip_p must lie in [0, 1], got {a['flip_p']}")
    if not (isinstance(a["crop_padding"], int) and a["crop_padding"] >= 0):
        raise ConfigError("experiment.augmentation.crop_padding must be a non-negative integer")
    import torchvision

    models = torchvision.models.list_models(module=torchvision.models)
    if e["model"] not in models:
        resnets = [m for m in models if "resnet" in m or "resnext" in m]
        raise ConfigError(f"unknown experiment.model {e['model']!r}; allowed: a torchvision "
                          f"classification model, e.g. {', '.join(resnets)}")
