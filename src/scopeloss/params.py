"""Every hyperparameter and run setting, declared once: type, default, allowed values, where
the value comes from, and a one-line doc.

From these declarations follow
* the checks of both trainers' resolvers (``scopeloss.rl.config``, ``scopeloss.classify.config``)
  and so of ``--hparams``, ``--run`` and ``--set`` (``Param.check``: one message style,
  ``KEY must be ALLOWED, got VALUE``);
* the workflow's JSON schema (``python -m scopeloss.params schema``, written to
  ``workflow/schemas/config.schema.yaml``; a test checks the file is up to date);
* the reference table ``docs/parameters.md`` (``python -m scopeloss.params docs``).
Cross-key rules (a budget of at least one rollout, fractions that sum below 1, ...) live with
the resolver of their trainer, which the workflow runs on every cell before any job.

Sources: "paper" = Burhani et al., *Scope Loss for Imbalanced Classification and RL
Exploration* (Tables 3-5); "CleanRL" = vwxyzjn/cleanrl ``ppo_atari.py``; other sources are
named. Per-suite departures from the PPO defaults are in ``SUITE_PPO_DEFAULTS``.

This module imports neither torch nor any env package: the Snakefile reads it at start-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SEED_MAX = 2**32 - 1  # numpy's seed range


class ConfigError(ValueError):
    """A config value, CLI value or input file the pipeline cannot run; the message names
    the key (or file) and what is allowed."""


def check_seed(seed, key: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"{key} must be an integer in 0..{SEED_MAX}, got {seed!r}")
    return seed


@dataclass(frozen=True)
class Param:
    """One key. ``kind``: int, float, bool, str or pair (``[mean, std]``, two finite numbers,
    std >= 0). ``low``/``high`` bound numbers (``open_low``/``open_high``: exclusive);
    ``choices`` lists the allowed strings; ``nullable`` allows null (meaning in ``doc``)."""

    kind: str
    default: Any
    doc: str
    source: str = "ours"
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def allowed(self) -> str:
        """What the value may be, in words (the second half of every error message)."""
        if self.kind == "bool":
            text = "true or false"
        elif self.choices:
            text = f"one of {', '.join(self.choices)}"
        elif self.kind == "str":
            text = "a non-empty string"
        elif self.kind == "pair":
            text = "[mean, std]: two finite numbers, std >= 0"
        else:
            text = _number_words(self)
        return f"null or {text}" if self.nullable else text

    def check(self, key: str, value: Any) -> Any:
        """``value`` if allowed (ints accepted for floats, integral floats for ints), else a
        ConfigError naming ``key``."""
        if value is None and self.nullable:
            return None
        if not self._ok(value):
            raise ConfigError(f"{key} must be {self.allowed()}, got {value!r}")
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        return list(value) if self.kind == "pair" else value

    def _ok(self, v: Any) -> bool:
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "str":
            return isinstance(v, str) and v != "" and (not self.choices or v in self.choices)
        if self.kind == "pair":
            return (isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_finite, v))
                    and v[1] >= 0)
        if not _finite(v) or (self.kind == "int" and not float(v).is_integer()):
            return False
        if self.low is not None and (v <= self.low if self.open_low else v < self.low):
            return False
        return self.high is None or (v < self.high if self.open_high else v <= self.high)

    def schema(self) -> dict:
        """This key as JSON Schema (the workflow's config.schema.yaml)."""
        if self.kind == "bool":
            s: dict = {"type": "boolean"}
        elif self.kind == "str":
            s = {"type": "string", **({"enum": list(self.choices)} if self.choices
                                      else {"minLength": 1})}
        elif self.kind == "pair":
            s = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}
        else:
            s = {"type": "integer" if self.kind == "int" else "number"}
            if self.low is not None:
                s["exclusiveMinimum" if self.open_low else "minimum"] = self.low
            if self.high is not None:
                s["exclusiveMaximum" if self.open_high else "maximum"] = self.high
        s["description"] = self.doc
        return {"oneOf": [{"type": "null"}, s], "description": self.doc} if self.nullable else s


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number_words(p: Param) -> str:
    noun = "an integer" if p.kind == "int" else "a finite number"
    if p.kind == "int" and p.low == 0 and p.open_low and p.high is None:
        return "a positive integer"
    if p.low is not None and p.high is not None:
        left, right = "(" if p.open_low else "[", ")" if p.open_high else "]"
        return f"{noun} in {left}{_num(p.low)}, {_num(p.high)}{right}"
    if p.low is not None:
        return f"{noun} {'>' if p.open_low else '>='} {_num(p.low)}"
    if p.high is not None:
        return f"{noun} {'<' if p.open_high else '<='} {_num(p.high)}"
    return noun


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def positive_int(default, doc, source="ours", **kw) -> Param:
    return Param("int", default, doc, source, low=0, open_low=True, **kw)


def count(default, doc, source="ours", **kw) -> Param:
    return Param("int", default, doc, source, low=0, **kw)


def positive(default, doc, source="ours", **kw) -> Param:
    return Param("float", default, doc, source, low=0, open_low=True, **kw)


def unit(default, doc, source="ours", **kw) -> Param:
    return Param("float", default, doc, source, low=0, high=1, **kw)


def flag(default, doc, source="ours") -> Param:
    return Param("bool", default, doc, source)


# ============================================================================ losses
# The paper's loss parameters (Tables 3-4): alpha of pel/scope and the PPO losses, gamma of
# focal; scopeloss.losses takes its defaults from here.
PPO_DEFAULTS: dict[str, dict[str, float]] = {
    "policy": {},  # eq. 10
    "policy_entropy": {"alpha": 0.01},  # eq. 11, alpha_entropy
    "scope": {"alpha": 0.01},  # eq. 12, alpha_scope
    "focal": {"alpha": 2.0},  # eq. 14, alpha_focal
}
SUPERVISED_DEFAULTS: dict[str, dict[str, float]] = {
    "ce": {},  # eq. 1
    "focal": {"gamma": 2.0},  # eq. 2
    "pel": {"alpha": 8e-6},  # eq. 5
    "scope": {"alpha": 1.0},  # eq. 8
    "weighted_ce": {},  # inverse-frequency weights (Cui et al. 2019 style), beyond paper
    "balanced_softmax": {},  # Ren et al. 2020, beyond paper
}
RL_LOSS_NAMES = tuple(PPO_DEFAULTS)
# Losses that correct for the natural class counts themselves (inverse-frequency weights;
# Balanced Softmax's log-prior). Under re-sampling (an experiment's `sampling` other than
# natural) the batches are already re-balanced, so these would correct twice (Ren et al.
# 2020 note Balanced Softmax over-balances under class-balanced sampling): such cells are
# not in the grid (scopeloss.config.classification_runs).
COUNT_CORRECTING_LOSSES = ("weighted_ce", "balanced_softmax")
CL_LOSS_NAMES = tuple(SUPERVISED_DEFAULTS)

# ============================================================================ RL
PPO: dict[str, Param] = {
    "total_steps": positive_int(10_000_000, "agent steps (env steps summed over envs)",
                                "CleanRL ppo_atari / baselines ppo2: 10M"),
    "num_envs": positive_int(8, "parallel envs", "CleanRL ppo_atari"),
    "num_steps": positive_int(128, "rollout length per env", "CleanRL ppo_atari"),
    "update_epochs": positive_int(4, "passes over each rollout", "CleanRL ppo_atari"),
    "num_minibatches": positive_int(4, "minibatches per pass", "CleanRL ppo_atari"),
    "lr": positive(1.0e-4, "Adam learning rate", "paper, Table 3"),
    "anneal_lr": flag(True, "decay the lr linearly to 0 over the run", "CleanRL"),
    "gamma": Param("float", 0.999, "discount", "paper, Table 3", low=0, high=1,
                   open_low=True),
    "gae_lambda": unit(0.95, "GAE lambda", "paper, Table 3"),
    "clip_coef": positive(0.1, "PPO ratio clip epsilon", "CleanRL ppo_atari"),
    "clip_vloss": flag(True, "clip the value loss as CleanRL does",
                       "CleanRL; off for Atari/MinAtar (Andrychowicz et al. 2021)"),
    "vf_coef": Param("float", 0.5, "value-loss weight (alpha_value)", "paper, Table 3", low=0),
    "max_grad_norm": positive(0.5, "global gradient-norm clip", "CleanRL"),
    "norm_adv": flag(True, "z-score advantages per minibatch", "paper, eq. 9"),
    "eval_every": count(0, "updates between held-out-level evaluations (0 = never; Procgen)"),
    "eval_episodes": positive_int(64, "episodes per held-out evaluation"),
    "bf16": flag(True, "bf16 autocast on cuda (heads and losses stay float32)"),
}
# Per-suite departures from the PPO defaults.
SUITE_PPO_DEFAULTS: dict[str, dict[str, Any]] = {
    # Andrychowicz et al. 2021: value clipping does not help; with gamma 0.999 it lags.
    "atari": {"clip_vloss": False},
    # CleanRL ppo_procgen (Cobbe et al. 2020): 64 x 256, 3 epochs, 8 minibatches, no annealing.
    "procgen": {"total_steps": 25_000_000, "num_envs": 64, "num_steps": 256,
                "update_epochs": 3, "num_minibatches": 8, "clip_coef": 0.2, "anneal_lr": False,
                "eval_every": 50, "eval_episodes": 64},
    # CleanRL ppo.py (classic control).
    "gym": {"total_steps": 500_000, "num_envs": 4, "num_steps": 128, "lr": 2.5e-4,
            "gamma": 0.99, "clip_coef": 0.2},
    # Young & Tian 2019 train for 5M frames; 8 x 64 learnt faster than 8 x 128 (README).
    "minatar": {"total_steps": 5_000_000, "num_envs": 8, "num_steps": 64, "clip_vloss": False},
}
SUITES = tuple(SUITE_PPO_DEFAULTS)
# Suites whose run.device auto means cuda when there is one (the others' networks are too
# small to gain from a GPU).
GPU_SUITES = ("atari", "procgen")

_GAME = Param("str", None, "the game: ALE ROM id, Procgen name, Gymnasium id or MinAtar module")
RL_ENV: dict[str, dict[str, Param]] = {
    "atari": {
        "game": _GAME,
        "repeat_action_probability": unit(0.25, "sticky actions ('v0' ids)",
                                          "Machado et al. 2018"),
        "frameskip": positive_int(4, "frames per agent step", "Mnih et al. 2015"),
        "noop_max": count(30, "random no-ops at reset", "Mnih et al. 2015"),
        "episodic_life": flag(False, "must stay false: full-game episodes (ale-py's vector "
                                     "env would reset the game at a life loss)"),
        "max_episode_steps": positive_int(27_000, "agent steps (108000 frames)",
                                          "Machado et al. 2018"),
    },
    "procgen": {
        "game": _GAME,
        "distribution_mode": Param("str", "hard", "Procgen difficulty", "paper",
                                   choices=("easy", "hard", "extreme", "memory", "exploration")),
        "num_levels": count(500, "training levels (0 = unlimited)", "paper"),
        "start_level": count(0, "first training level", "Cobbe et al. 2020"),
        "eval_num_levels": count(0, "held-out levels (0 = unlimited, unseen)"),
        "eval_start_level": count(None, "first held-out level; null = start + num_levels",
                                  nullable=True),
    },
    "gym": {"game": _GAME},
    "minatar": {
        "game": Param("str", "breakout", "minatar.environments module", "Young & Tian 2019",
                      choices=("breakout", "asterix", "seaquest", "space_invaders", "freeway")),
        "sticky_action_prob": unit(0.1, "sticky actions", "minatar default"),
        "difficulty_ramping": flag(True, "games speed up within an episode", "minatar default"),
        "max_episode_steps": positive_int(None, "time limit; null = none (minatar default)",
                                          nullable=True),
    },
}
RL_LOSS: dict[str, Param] = {
    "alpha": Param("float", None, "the loss's alpha; null = the paper's default",
                   "paper, Table 3", low=0, nullable=True),
}
RL_RUN: dict[str, Param] = {
    "device": Param("str", "auto", "auto = cuda for Atari/Procgen when there is one, else cpu",
                    choices=("auto", "cpu", "cuda")),
    "compile": flag(False, "torch.compile the fixed-shape network calls"),
    "torch_threads": positive_int(None, "torch CPU threads; null = the job's cores",
                                  nullable=True),
    "env_threads": positive_int(None, "env worker threads; null = the job's cores, at most "
                                      "num_envs", nullable=True),
    "checkpoint_every": positive_int(None, "updates between checkpoints; null = the suite's "
                                           "default", nullable=True),
    "tensorboard": flag(True, "TensorBoard scalars beside the CSVs"),
}

# ============================================================================ classification
CL_DATASET: dict[str, Param] = {
    "kind": Param("str", None, "which dataset builder", choices=("caltech256", "digits_lt")),
    "root": Param("str", "data", "folder of the datasets, manifests and cache"),
    "image_size": positive_int(224, "model input size (pixels)",
                               "torchvision ImageNet convention"),
    "resize_size": positive_int(256, "cached image size (shorter side, centre crop)"),
    "val_fraction": Param("float", 0.1, "validation share of each class", low=0, high=1,
                          open_low=True, open_high=True),
    "test_fraction": Param("float", 0.2, "test share of each class", low=0, high=1,
                           open_low=True, open_high=True),
    "split_seed": Param("int", 0, "seed of the one split every run shares", low=0,
                        high=SEED_MAX),
}
CL_DATASET_KIND: dict[str, dict[str, Param]] = {
    "caltech256": {},
    "digits_lt": {
        "imbalance_ratio": Param("float", 10.0, "head / tail class size",
                                 "Caltech-256's 827 / 80 ~ 10", low=1),
        "max_per_class": Param("int", 174, "head class size", "the smallest digits class",
                               low=3, high=174),
    },
}
CL_AUGMENTATION: dict[str, Param] = {
    "color": Param("pair", [1.0, 0.3], "saturation factor ~ N(mean, std)", "paper, Table 5"),
    "contrast": Param("pair", [1.0, 0.1], "contrast factor ~ N(mean, std)", "paper, Table 5"),
    "brightness": Param("pair", [1.0, 0.1], "brightness factor ~ N(mean, std)",
                        "paper, Table 5"),
    "sharpness": Param("pair", [1.0, 0.3], "sharpness factor ~ N(mean, std)", "paper, Table 5"),
    "crop_padding": count(0, "zero padding before the random crop"),
    "flip_p": unit(0.5, "horizontal flip probability", "paper"),
}
# CUDA (Ahn, Ko, Yun, ICLR 2023; github.com/sumyeongahn/CUDA_LTR defaults): "the curriculum".
CL_CURRICULUM: dict[str, Param] = {
    "enabled": flag(False, "run the CUDA curriculum (needs augment: true)"),
    "threshold": unit(0.6, "accuracy a class must exceed at every tested level to go up",
                      "CUDA_LTR accept_rate"),
    "num_test": positive_int(10, "test images per class and level, x (level + 1)",
                             "CUDA_LTR num_test"),
    "max_level": positive_int(10, "highest level", "CUDA_LTR max_mag"),
    "max_d": positive(30, "magnitude = level / max_d", "CUDA_LTR max_d"),
    "aug_prob": unit(0.5, "probability an image gets its class's level", "CUDA_LTR aug_prob"),
}
CL_EXPERIMENT: dict[str, Param] = {
    "model": Param("str", "resnet101", "torchvision ResNet", "paper: ResNet101",
                   choices=("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")),
    "optimizer": Param("str", "adam", "optimiser", "paper, Tables 4-5", choices=("adam", "sgd")),
    "lr": positive(1.0e-3, "learning rate", "paper, Tables 4-5"),
    "momentum": unit(0.9, "SGD momentum (unused by Adam)", "torchvision reference recipe"),
    "weight_decay": Param("float", 0.0, "L2 weight decay", low=0),
    "schedule": Param("str", "constant", "lr schedule per step", "paper",
                      choices=("constant", "cosine")),
    "epochs": positive_int(100, "epoch budget", "paper, Table 5"),
    "early_stopping_patience": positive_int(10, "epochs without a validation gain before "
                                                "stopping; null = never", nullable=True),
    "batch_size": Param("int", 64, "images per step (BatchNorm needs > 1)", low=2),
    "augment": flag(False, "Table 5 augmentation on the device", "paper"),
    "sampling": Param("str", "natural", "how an epoch's images are drawn",
                      "beyond paper: Kang et al. 2020",
                      choices=("natural", "class_balanced", "sqrt")),
    "bf16": flag(True, "bf16 autocast on cuda (the head and losses stay float32)"),
}
CL_SUBSECTIONS = {"augmentation": CL_AUGMENTATION, "cuda": CL_CURRICULUM}
# Per-dataset and per-experiment departures from the declared defaults.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "caltech256": {"kind": "caltech256"},
    # 8x8 digits upsampled and cached at the model's input size; a larger test share so
    # that tail classes keep a few test images.
    "digits_lt": {"kind": "digits_lt", "image_size": 32, "resize_size": 32,
                  "val_fraction": 0.15, "test_fraction": 0.25},
}
_AUGMENTED = {"optimizer": "sgd", "lr": 1.0e-2, "schedule": "cosine", "augment": True,
              "early_stopping_patience": None,  # paper, Table 5: the full cosine schedule
              "weight_decay": 1.0e-4}  # torchvision's ResNet recipe
EXPERIMENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "plain": {},  # Table 1: Adam 1e-3, no augmentation, to convergence
    "augmented": _AUGMENTED,  # Table 2: Table 5's augmentation, SGD, cosine decay
    # Beyond the paper (issue 15): a long-tail remedy beside each of the two settings.
    "plain_balanced": {"sampling": "class_balanced"},
    "augmented_cuda": {**_AUGMENTED, "cuda": {"enabled": True}},
}
CL_LOSS: dict[str, Param] = {
    "alpha": Param("float", None, "the loss's alpha; null = the paper's default",
                   "paper, Tables 4-5", nullable=True),
    "gamma": Param("float", None, "focal gamma; null = the paper's default (2)",
                   "paper, eq. 2", nullable=True),
}
CL_RUN: dict[str, Param] = {
    "device": RL_RUN["device"],
    "compile": flag(False, "torch.compile the model"),
    "channels_last": flag(True, "NHWC memory format on cuda"),
    "torch_threads": RL_RUN["torch_threads"],
    "num_workers": count(None, "processes decoding images into the cache; null = "
                               "min(8, cores)", nullable=True),
    "checkpoint_every": positive_int(1, "epochs between resume checkpoints"),
    "cache_dir": Param("str", None, "decoded-image cache; null = {root}/cache", nullable=True),
    "deterministic": flag(False, "deterministic kernels, no TF32 (bitwise-reproducible)"),
    "tensorboard": RL_RUN["tensorboard"],
}


def check_section(where: str, values: Any, params: dict[str, Param]) -> dict:
    """The checked values of one flat section (every key declared, every value allowed)."""
    if not isinstance(values, dict):
        raise ConfigError(f"section {where!r} must be a mapping, got {values!r}")
    out = {}
    for key, value in values.items():
        if key not in params:
            raise ConfigError(f"unknown key {where}.{key}; allowed: {', '.join(params)}")
        out[key] = params[key].check(f"{where}.{key}", value)
    return out


# ============================================================================ generated files


def _object(params: dict[str, Param], required: tuple[str, ...] = (), extra: dict | None = None
            ) -> dict:
    props = {k: p.schema() for k, p in params.items()}
    props.update(extra or {})
    out: dict = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = list(required)
    return out


def config_schema() -> dict:
    """The JSON schema of config.yaml (after preset overlays), from the declarations."""
    name = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
    names = {"type": "array", "uniqueItems": True, "items": name}
    seeds = {"type": "array", "minItems": 1, "uniqueItems": True,
             "items": {"type": "integer", "minimum": 0, "maximum": SEED_MAX}}
    resources = _object({k: positive_int(1, d) for k, d in (
        ("runtime", "minutes"), ("mem_mb", "MB"), ("threads", "CPU cores per job"))},
        required=("runtime", "mem_mb", "threads"))
    env_keys: dict[str, Param] = {}
    for suite_params in RL_ENV.values():
        env_keys.update(suite_params)
    env_keys.pop("game")
    env_spec = _object({**PPO, **env_keys}, required=("suite", "game"), extra={
        "suite": {"type": "string", "enum": list(SUITES)},
        "game": {"type": "string", "minLength": 1}})
    dataset_keys = dict(CL_DATASET)
    for extra in CL_DATASET_KIND.values():
        dataset_keys.update(extra)
    experiment = _object(CL_EXPERIMENT, extra={k: _object(v) for k, v in CL_SUBSECTIONS.items()})
    rl = _object({}, required=("envs", "losses", "seeds", "ppo", "run", "loss_specs",
                               "env_specs", "resources"), extra={
        "envs": names,
        "losses": {"type": "array", "uniqueItems": True,
                   "items": {"type": "string", "enum": list(RL_LOSS_NAMES)}},
        "seeds": seeds, "ppo": _object(PPO, required=tuple(PPO)), "run": _object(RL_RUN),
        "loss_specs": {"type": "object", "propertyNames": {"enum": list(RL_LOSS_NAMES)},
                       "additionalProperties": _object(RL_LOSS)},
        "env_specs": {"type": "object", "propertyNames": name, "additionalProperties": env_spec},
        "resources": {"type": "object", "propertyNames": {"enum": list(SUITES)},
                      "additionalProperties": resources}})
    cl = _object({}, required=("datasets", "experiments", "losses", "seeds", "dataset_specs",
                               "experiment_specs", "loss_specs", "run", "resources"), extra={
        "datasets": names, "experiments": names,
        "losses": {"type": "array", "uniqueItems": True,
                   "items": {"type": "string", "enum": list(CL_LOSS_NAMES)}},
        "seeds": seeds, "run": _object(CL_RUN),
        "dataset_specs": {"type": "object", "propertyNames": name, "additionalProperties":
                          _object(dataset_keys, required=("kind", "root", "image_size",
                                                          "val_fraction", "test_fraction",
                                                          "split_seed"))},
        "experiment_specs": {"type": "object", "propertyNames": name,
                             "additionalProperties": experiment},
        "loss_specs": {"type": "object", "propertyNames": {"enum": list(CL_LOSS_NAMES)},
                       "additionalProperties": _object(CL_LOSS)},
        "resources": {"type": "object", "propertyNames": {"enum": list(CL_DATASET_KIND)},
                      "additionalProperties": resources}})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "config.yaml of the Scope Loss reproduction, after preset overlays. "
                           "GENERATED by `python -m scopeloss.params schema` from "
                           "src/scopeloss/params.py: edit that, not this file.",
            **_object({}, required=("rl", "classification"),
                      extra={"rl": rl, "classification": cl})}


def _table(title: str, params: dict[str, Param], defaults: dict | None = None) -> list[str]:
    rows = [f"### {title}", "", "| key | default | allowed | source | what |",
            "|---|---|---|---|---|"]
    for key, p in params.items():
        value = (defaults or {}).get(key, p.default)
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) \
            else str(value)
        rows.append(f"| `{key}` | `{shown}` | {p.allowed()} | {p.source} | {p.doc} |")
    return rows + [""]


def parameters_markdown() -> str:
    """docs/parameters.md: every key with its default, allowed values, source and meaning."""
    lines = ["# Parameters", "",
             "GENERATED by `python -m scopeloss.params docs` from `src/scopeloss/params.py`, "
             "the one declaration of every hyperparameter and run setting (types, defaults, "
             "allowed values, sources). The workflow's schema is generated from the same "
             "declarations, and both trainers check their inputs with them.", "",
             "## RL (`rl.ppo`, `rl.env_specs.<ENV>`, `rl.loss_specs`, `rl.run`)", ""]
    lines += _table("ppo (defaults of Atari; other suites below)", PPO)
    for suite, departures in SUITE_PPO_DEFAULTS.items():
        lines.append(f"* {suite}: " + ", ".join(f"`{k}: {v}`" for k, v in departures.items()))
    lines.append("")
    for suite, params in RL_ENV.items():
        lines += _table(f"env, suite {suite}", params)
    lines += _table("loss (rl.loss_specs.<LOSS>)", RL_LOSS)
    lines += _table("run settings (rl.run: how a job runs, never a rerun trigger)", RL_RUN)
    lines += ["## Classification (`classification.dataset_specs`, `experiment_specs`, "
              "`loss_specs`, `run`)", ""]
    lines += _table("dataset", CL_DATASET)
    for kind, params in CL_DATASET_KIND.items():
        if params:
            lines += _table(f"dataset, kind {kind}", params)
    lines += _table("experiment (defaults of `plain`, Table 1)", CL_EXPERIMENT)
    lines += _table("experiment.augmentation (Table 5)", CL_AUGMENTATION)
    lines += _table("experiment.cuda (the CUDA curriculum)", CL_CURRICULUM)
    lines += _table("loss (classification.loss_specs.<LOSS>)", CL_LOSS)
    lines += _table("run settings (classification.run)", CL_RUN)
    return "\n".join(lines)


def schema_yaml() -> str:
    import yaml

    return ("# GENERATED by `python -m scopeloss.params schema` from src/scopeloss/params.py;\n"
            "# edit the declarations there, then regenerate (a test checks this file).\n"
            + yaml.safe_dump(config_schema(), sort_keys=False, width=100))


def main(argv: list[str] | None = None) -> int:
    """``python -m scopeloss.params schema|docs``: print a generated file."""
    import sys

    what = (argv if argv is not None else sys.argv[1:]) or ["docs"]
    if what[0] not in ("schema", "docs"):
        print("usage: python -m scopeloss.params schema|docs", file=sys.stderr)
        return 2
    sys.stdout.write(schema_yaml() if what[0] == "schema" else parameters_markdown() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
