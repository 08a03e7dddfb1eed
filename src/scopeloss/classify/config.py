"""Every default of the classification runs, in one place, and the resolver that checks them.

A run's hyperparameters are ``{"dataset": {...}, "experiment": {...}, "loss": {...}}``
(docs/CONTRACT.md). ``resolve`` starts from the built-in spec of the named dataset and
experiment, overlays the ``--hparams`` JSON and then each ``--set section.key=value``, and
rejects any unknown section or key by name, listing the allowed ones; every value is
type-checked (finite numbers, booleans, integers) before any data loads.

Run settings (``RUN``: device, compile, channels_last, torch_threads, num_workers,
checkpoint_every, cache_dir, deterministic, tensorboard) say how and where a run executes,
not what it learns: they come from ``--run JSON`` and ``--set run.key=value``
(``resolve_run``), are not part of a checkpoint's identity, and changing them keeps
checkpoints valid. Naming one of them in ``experiment``/``dataset`` is an error that says
where it moved.

Values the paper gives: plain = Adam lr 1e-3, no augmentation, best-validation checkpoint;
augmented = SGD lr 1e-2, 100 epochs, cosine decay to 0, Table 5 augmentation; the loss
parameters of Table 4 (``scopeloss.losses.SUPERVISED_DEFAULTS``). Everything marked
"our choice" below is not in the paper.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from scopeloss import overrides
from scopeloss.devices import job_cores
from scopeloss.losses import SUPERVISED_LOSSES
from scopeloss.overrides import load_hparams, parse_set  # noqa: F401  (re-exported for the CLI)
from scopeloss.params import SEED_MAX, ConfigError, check_seed  # noqa: F401  (re-exported)

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
    },
    "digits_lt": {
        "kind": "digits_lt",
        "root": "data",
        "image_size": 32,          # 8x8 digits upscaled to small RGB images
        "resize_size": 32,
        "val_fraction": 0.15,
        "test_fraction": 0.25,     # larger than Caltech's so tail classes keep a few test images
        "split_seed": 0,
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

# Run settings: how/where a run executes; never part of its identity (issue 10).
RUN: dict[str, Any] = {
    "device": "auto",          # auto | cpu | cuda (auto = cuda when available)
    "compile": False,          # torch.compile the model
    "channels_last": True,     # only acts on cuda
    "torch_threads": None,     # CPU threads for torch (None = the cores this job may use)
    "num_workers": None,       # processes decoding images into the cache once (0 = in-process,
                               # None = min(8, the cores this job may use))
    "checkpoint_every": 1,     # epochs between resume checkpoints in DIR/.ckpt/
    "cache_dir": None,         # decoded-image cache (None = {dataset.root}/cache)
    "deterministic": False,    # cudnn.deterministic, no TF32, deterministic algorithms (warn)
    "tensorboard": True,       # accepted and recorded; a later change wires it
}
# Keys that moved out of the hyperparameters into the run settings.
MOVED = {("experiment", k) for k in ("device", "compile", "channels_last", "torch_threads",
                                     "num_workers", "checkpoint_every")}
MOVED |= {("dataset", "cache_dir")}
_RUNTIME = {
    "bf16": True,              # autocast bf16; only acts on cuda (changes the maths: identity)
}

# Beyond the paper (issue 15): how each epoch's training images are drawn. "natural" = a
# random permutation of the training set (the paper's setting); "class_balanced" = every
# class equally likely (image weight 1 / n_c); "sqrt" = class probability proportional to
# sqrt(n_c) (the square-root sampling of Mahajan et al. 2018, Kang et al. 2020). Both
# re-samplers draw with replacement, one epoch = as many images as the training set.
SAMPLINGS = ("natural", "class_balanced", "sqrt")

# CUDA, Curriculum of Data Augmentation (Ahn, Ko, Yun, ICLR 2023; the authors' code
# github.com/sumyeongahn/CUDA_LTR, cifar/train/train_fn/base.py update_score_base and
# cifar/utils/config.py defaults): each class has a strength level 0..max_level; after
# every epoch, for each level l <= the class's level, num_test * (l + 1) training images of
# the class are augmented at level l and classified; if the accuracy at every such level
# exceeds `threshold`, the level goes up by one, otherwise down by one (clamped). Applied
# to Table 5's four enhancement ops (augment.py), with magnitude level / max_d.
CUDA: dict[str, Any] = {
    "enabled": False,
    "threshold": 0.6,          # CUDA's accept_rate (gamma), default 0.6
    "num_test": 10,            # CUDA's num_test: images per class and level, x (level + 1)
    "max_level": 10,           # CUDA: max_mag = max_ops = 10 -> levels 0..10
    "max_d": 30,               # CUDA's max_d: magnitude = level / max_d
    "aug_prob": 0.5,           # CUDA's aug_prob: an image uses its class's level, else 0
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
        "sampling": "natural",
        "cuda": copy.deepcopy(CUDA),
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
        "sampling": "natural",
        "cuda": copy.deepcopy(CUDA),
        **_RUNTIME,
    },
}
# Beyond the paper (issue 15): the paper's two settings with a long-tail remedy added.
EXPERIMENTS["plain_balanced"] = {**copy.deepcopy(EXPERIMENTS["plain"]),
                                 "sampling": "class_balanced"}
EXPERIMENTS["augmented_cuda"] = {**copy.deepcopy(EXPERIMENTS["augmented"]),
                                 "cuda": {**copy.deepcopy(CUDA), "enabled": True}}

LOSS_KEYS = ("alpha", "gamma")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")
SECTIONS = ("dataset", "experiment", "loss")




def _check_name(what: str, name: str, allowed) -> None:
    if name not in allowed:
        raise ConfigError(f"unknown {what} {name!r}; allowed: {', '.join(allowed)}")


def _merge(base: dict, over: dict, where: str) -> dict:
    """Overlay ``over`` on ``base`` key by key; a key ``base`` lacks is an error."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if (where, key) in MOVED:
            raise ConfigError(f"{where}.{key} is a run setting now, not a hyperparameter: pass "
                              f"it as run.{key} (--run JSON or --set run.{key}=VALUE)")
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
            if section == "run":
                raise ConfigError("run settings do not go in --hparams: pass them with --run "
                                  "JSON or --set run.KEY=VALUE")
            if section not in SECTIONS:
                raise ConfigError(f"unknown section {section!r}; allowed: {', '.join(SECTIONS)}")
            if not isinstance(values, dict):
                raise ConfigError(f"section {section!r} must be a mapping, got {values!r}")
            cfg[section] = _merge(cfg[section], values, section)
    check(cfg, dataset)
    return cfg


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _want(ok: bool, key: str, what: str, value) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {what}, got {value!r}")


def check_dataset(d: dict, dataset: str) -> None:
    if d["kind"] != DATASETS[dataset]["kind"]:
        raise ConfigError(f"dataset.kind {d['kind']!r} does not match --dataset {dataset!r}")
    _want(isinstance(d["root"], str) and d["root"] != "", "dataset.root", "a path", d["root"])
    for key in ("image_size", "resize_size"):
        _want(_is_int(d[key]) and d[key] > 0, f"dataset.{key}", "a positive integer", d[key])
    if d["resize_size"] < d["image_size"]:
        raise ConfigError(f"dataset.resize_size ({d['resize_size']}) must be >= "
                          f"dataset.image_size ({d['image_size']})")
    for key in ("val_fraction", "test_fraction"):
        _want(_is_real(d[key]), f"dataset.{key}", "a number in (0, 1)", d[key])
    v, t = d["val_fraction"], d["test_fraction"]
    if not (0 < v < 1 and 0 < t < 1 and v + t < 1):
        raise ConfigError(f"dataset.val_fraction ({v}) and dataset.test_fraction ({t}) must "
                          "lie in (0, 1) and sum to less than 1")
    _want(_is_int(d["split_seed"]) and 0 <= d["split_seed"] <= SEED_MAX, "dataset.split_seed",
          f"an integer in 0..{SEED_MAX}", d["split_seed"])
    if d["kind"] == "digits_lt":
        _want(_is_real(d["imbalance_ratio"]) and d["imbalance_ratio"] >= 1,
              "dataset.imbalance_ratio", "a finite number >= 1", d["imbalance_ratio"])
        if not (_is_int(d["max_per_class"]) and 3 <= d["max_per_class"] <= 174):
            raise ConfigError("dataset.max_per_class must be an integer in [3, 174] (the "
                              f"smallest digits class), got {d['max_per_class']!r}")


def check(cfg: dict, dataset: str) -> None:
    """Type and range of every hyperparameter, naming the key; nothing is loaded."""
    d, e, lo = cfg["dataset"], cfg["experiment"], cfg["loss"]
    check_dataset(d, dataset)
    _want(isinstance(e["model"], str), "experiment.model", "a torchvision model name", e["model"])
    _want(isinstance(e["optimizer"], str), "experiment.optimizer", "a name", e["optimizer"])
    _want(isinstance(e["schedule"], str), "experiment.schedule", "a name", e["schedule"])
    _check_name("experiment.optimizer", e["optimizer"], OPTIMIZERS)
    _check_name("experiment.schedule", e["schedule"], SCHEDULES)
    _want(_is_real(e["lr"]) and e["lr"] > 0, "experiment.lr", "a finite positive number", e["lr"])
    for key in ("momentum", "weight_decay"):
        _want(_is_real(e[key]) and e[key] >= 0, f"experiment.{key}", "a finite number >= 0",
              e[key])
    _want(_is_int(e["epochs"]) and e["epochs"] > 0, "experiment.epochs", "a positive integer",
          e["epochs"])
    _want(_is_int(e["batch_size"]) and e["batch_size"] >= 2, "experiment.batch_size",
          "an integer >= 2 (BatchNorm needs more than one sample)", e["batch_size"])
    p = e["early_stopping_patience"]
    _want(p is None or (_is_int(p) and p > 0), "experiment.early_stopping_patience",
          "null or a positive integer", p)
    for key in ("augment", "bf16"):
        _want(isinstance(e[key], bool), f"experiment.{key}", "true or false", e[key])
    a = e["augmentation"]
    for key in ("color", "contrast", "brightness", "sharpness"):
        pair = a[key]
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(map(_is_real, pair))
                and pair[1] >= 0):
            raise ConfigError(f"experiment.augmentation.{key} must be [mean, std] (finite "
                              f"numbers) with std >= 0, got {pair!r}")
    _want(_is_real(a["flip_p"]) and 0 <= a["flip_p"] <= 1, "experiment.augmentation.flip_p",
          "a number in [0, 1]", a["flip_p"])
    _want(_is_int(a["crop_padding"]) and a["crop_padding"] >= 0,
          "experiment.augmentation.crop_padding", "a non-negative integer", a["crop_padding"])
    _check_name("experiment.sampling", e["sampling"] if isinstance(e["sampling"], str)
                else repr(e["sampling"]), SAMPLINGS)
    cu = e["cuda"]
    _want(isinstance(cu["enabled"], bool), "experiment.cuda.enabled", "true or false",
          cu["enabled"])
    for key in ("threshold", "aug_prob"):
        _want(_is_real(cu[key]) and 0 <= cu[key] <= 1, f"experiment.cuda.{key}",
              "a number in [0, 1]", cu[key])
    for key in ("num_test", "max_level"):
        _want(_is_int(cu[key]) and cu[key] > 0, f"experiment.cuda.{key}", "a positive integer",
              cu[key])
    _want(_is_real(cu["max_d"]) and cu["max_d"] > 0, "experiment.cuda.max_d",
          "a finite positive number", cu["max_d"])
    if cu["enabled"] and not e["augment"]:
        raise ConfigError("experiment.cuda.enabled needs experiment.augment: true (CUDA sets the "
                          "strength of the training augmentation)")
    for key in LOSS_KEYS:
        _want(lo[key] is None or _is_real(lo[key]), f"loss.{key}", "null or a finite number",
              lo[key])
    import torchvision

    models = torchvision.models.list_models(module=torchvision.models)
    if e["model"] not in models:
        resnets = [m for m in models if "resnet" in m or "resnext" in m]
        raise ConfigError(f"unknown experiment.model {e['model']!r}; allowed: a torchvision "
                          f"classification model, e.g. {', '.join(resnets)}")


# --- run settings -----------------------------------------------------------------------
def load_run(arg: str | None) -> dict:
    """``--run``: an inline JSON object or a .json file (``scopeloss.overrides.load_run``),
    its errors as ConfigError."""
    try:
        return overrides.load_run(arg)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def resolve_run(run: dict | None = None, sets: dict | None = None) -> dict:
    """The checked run settings: ``RUN`` overlaid with ``--run`` and then ``--set run.*``."""
    cfg = dict(RUN)
    for source in (run or {}), (sets or {}):
        if not isinstance(source, dict):
            raise ConfigError(f"run settings must be a mapping, got {source!r}")
        for key, value in source.items():
            if key not in RUN:
                raise ConfigError(f"unknown key run.{key}; allowed: {', '.join(sorted(RUN))}")
            cfg[key] = value
    _want(cfg["device"] in DEVICES, "run.device", f"one of {', '.join(DEVICES)}", cfg["device"])
    for key in ("compile", "channels_last", "deterministic", "tensorboard"):
        _want(isinstance(cfg[key], bool), f"run.{key}", "true or false", cfg[key])
    t = cfg["torch_threads"]
    _want(t is None or (_is_int(t) and t > 0), "run.torch_threads",
          "null or a positive integer", t)
    w = cfg["num_workers"]
    _want(w is None or (_is_int(w) and w >= 0), "run.num_workers", "null or an integer >= 0", w)
    _want(_is_int(cfg["checkpoint_every"]) and cfg["checkpoint_every"] > 0,
          "run.checkpoint_every", "a positive integer (epochs)", cfg["checkpoint_every"])
    c = cfg["cache_dir"]
    _want(c is None or (isinstance(c, str) and c != ""), "run.cache_dir", "null or a path", c)
    return cfg


def split_sets(sets: dict) -> tuple[dict, dict]:
    """``--set`` overrides -> (hyperparameter overrides, run-setting overrides)."""
    sets = dict(sets or {})
    run = sets.pop("run", {})
    if not isinstance(run, dict):
        raise ConfigError(f"--set run must name a key (run.KEY=VALUE), got {run!r}")
    return sets, run


def effective_run(run: dict) -> dict:
    """The null defaults of ``run`` filled in (device stays as requested)."""
    cores = job_cores()
    out = dict(run)
    if out["torch_threads"] is None:
        out["torch_threads"] = cores
    if out["num_workers"] is None:
        out["num_workers"] = min(8, cores)
    return out
