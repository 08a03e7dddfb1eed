"""The typed configurations the trainers take: one frozen dataclass per declared section
(``scopeloss.params``), built from a resolved cell by ``from_mapping``.

The resolvers (``rl.config.resolve``, ``classify.config.resolve``) check every value and
return the cell as JSON-shaped mappings (what ``--hparams`` carries, the checkpoint
identity and ``summary.json`` hold). The trainers turn those into these classes once, at
the start of a run, and pass them to rollout, update, the training step and the curriculum
in place of string-keyed dicts: a field the declarations do not have is an error when this
module is imported (``_declared``), a key the mapping lacks or adds one when the run is set
up, and a misspelt attribute read in src/ fails a test before any run reaches it
(tests/test_code_shape.py follows each typed parameter, local and attribute).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from scopeloss import params as P
from scopeloss.params import ConfigError


class _FromMapping:
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str):
        """The instance of a resolved section; a missing or unknown key names ``where``."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [k for k in names if k not in values]
        unknown = [k for k in values if k not in names]
        if missing or unknown:
            raise ConfigError(f"{where}: missing {', '.join(missing) or 'nothing'}, unknown "
                              f"{', '.join(unknown) or 'nothing'} (allowed: {', '.join(names)})")
        return cls(**{k: values[k] for k in names})


def _by_key(base: type, table: Mapping[str, type], key: str, section, where: str):
    """``section`` as the ``base`` subclass that ``table`` names for its ``key`` (the suite,
    the dataset kind); a section already typed is returned as it is."""
    if isinstance(section, base):
        return section
    value = section.get(key)
    if value not in table:
        raise ConfigError(f"{where}.{key} must be one of {', '.join(table)}, got {value!r}")
    return table[value].from_mapping(section, where)


def _declared(declared: dict[str, P.Param], *extra: str):
    """Class decorator: the dataclass's fields are exactly the declared keys in their
    order (so ``dataclasses.asdict`` writes a section as the resolver does), then ``extra``,
    its nested sections; checked at import."""
    def check(cls):
        fields = [f.name for f in dataclasses.fields(cls)]
        if fields != [*declared, *extra]:
            raise TypeError(f"{cls.__name__} fields {fields} are not the declared "
                            f"keys {[*declared, *extra]}")
        return cls
    return check


# --------------------------------------------------------------------------- RL
@_declared(P.PPO)
@dataclasses.dataclass(frozen=True)
class PPOConfig(_FromMapping):
    total_steps: int
    num_envs: int
    num_steps: int
    update_epochs: int
    num_minibatches: int
    lr: float
    anneal_lr: bool
    gamma: float
    gae_lambda: float
    clip_coef: float
    clip_vloss: bool
    vf_coef: float
    max_grad_norm: float
    norm_adv: bool
    eval_every: int
    eval_episodes: int
    bf16: bool

    @property
    def batch_size(self) -> int:
        """Samples per rollout."""
        return self.num_envs * self.num_steps


@dataclasses.dataclass(frozen=True)
class EnvConfig(_FromMapping):
    """A resolved ``env`` section: its suite and that suite's own keys, one subclass per
    suite (``ENV_CONFIGS``); ``EnvConfig.of(section)`` builds the suite's (a typed section
    is returned as it is)."""

    suite: str
    game: str

    @staticmethod
    def of(section: EnvConfig | Mapping[str, Any], where: str = "env") -> EnvConfig:
        return _by_key(EnvConfig, ENV_CONFIGS, "suite", section, where)

    @property
    def traits(self) -> P.SuiteTraits:
        """How the suite behaves (``params.SUITE_TRAITS``)."""
        return P.SUITE_TRAITS[self.suite]

    @property
    def frames_per_step(self) -> int:
        return 1


def _env_keys(suite: str) -> dict[str, Any]:
    return {"suite": None, **P.RL_ENV[suite]}


@_declared(_env_keys("atari"))
@dataclasses.dataclass(frozen=True)
class AtariEnvConfig(EnvConfig):
    repeat_action_probability: float
    frameskip: int
    noop_max: int
    episodic_life: bool
    max_episode_steps: int

    @property
    def frames_per_step(self) -> int:
        return self.frameskip


@_declared(_env_keys("procgen"))
@dataclasses.dataclass(frozen=True)
class ProcgenEnvConfig(EnvConfig):
    distribution_mode: str
    num_levels: int
    start_level: int
    eval_num_levels: int
    eval_start_level: int


@_declared(_env_keys("gym"))
@dataclasses.dataclass(frozen=True)
class GymEnvConfig(EnvConfig):
    pass


@_declared(_env_keys("minatar"))
@dataclasses.dataclass(frozen=True)
class MinAtarEnvConfig(EnvConfig):
    sticky_action_prob: float
    difficulty_ramping: bool
    max_episode_steps: int | None


ENV_CONFIGS: dict[str, type[EnvConfig]] = {
    "atari": AtariEnvConfig, "procgen": ProcgenEnvConfig, "gym": GymEnvConfig,
    "minatar": MinAtarEnvConfig}
assert set(ENV_CONFIGS) == set(P.SUITES)


@_declared(P.RL_RUN)
@dataclasses.dataclass(frozen=True)
class RLRunConfig(_FromMapping):
    device: str
    compile: bool | str
    torch_threads: int
    env_threads: int
    checkpoint_every: int
    tensorboard: bool
    keep_freed_memory: bool


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The registered loss a cell runs (a named variant's base) and its parameters."""

    name: str
    params: Mapping[str, float]


# --------------------------------------------------------------------------- classifier
@_declared(P.CL_DATASET)
@dataclasses.dataclass(frozen=True)
class DatasetConfig(_FromMapping):
    """A resolved ``dataset`` section: the keys every dataset has; a kind with keys of its
    own has a subclass in ``DATASET_CONFIGS``. ``DatasetConfig.of(section)`` builds the
    kind's (a typed section is returned as it is)."""

    kind: str
    root: str
    image_size: int
    resize_size: int
    val_fraction: float
    test_fraction: float
    split_seed: int

    @staticmethod
    def of(section: DatasetConfig | Mapping[str, Any], where: str = "dataset") -> DatasetConfig:
        return _by_key(DatasetConfig, DATASET_CONFIGS, "kind", section, where)


@dataclasses.dataclass(frozen=True)
class LongTailConfig(DatasetConfig):
    """The long-tailed stand-ins' own keys (digits_lt, numbers_lt)."""

    imbalance_ratio: float
    max_per_class: int


# A kind that declares no keys of its own is a plain DatasetConfig.
DATASET_CONFIGS: dict[str, type[DatasetConfig]] = {
    **{kind: DatasetConfig for kind in P.CL_DATASET_KIND},
    "digits_lt": LongTailConfig, "numbers_lt": LongTailConfig}
for _kind, _cls in DATASET_CONFIGS.items():
    _declared({**P.CL_DATASET, **P.CL_DATASET_KIND[_kind]})(_cls)


@_declared(P.CL_AUGMENTATION)
@dataclasses.dataclass(frozen=True)
class AugmentationConfig(_FromMapping):
    color: tuple[float, float]
    contrast: tuple[float, float]
    brightness: tuple[float, float]
    sharpness: tuple[float, float]
    crop_padding: int
    flip_p: float


@_declared(P.CL_CURRICULUM)
@dataclasses.dataclass(frozen=True)
class CurriculumConfig(_FromMapping):
    enabled: bool
    threshold: float
    num_test: int
    max_level: int
    max_d: float
    aug_prob: float


@_declared(P.CL_EXPERIMENT, "augmentation", "cuda")
@dataclasses.dataclass(frozen=True)
class ExperimentConfig(_FromMapping):
    model: str
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    epochs: int
    early_stopping_patience: int | None
    batch_size: int
    augment: bool
    sampling: str
    bf16: bool
    augmentation: AugmentationConfig
    cuda: CurriculumConfig

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "experiment"):
        nested = {"augmentation": AugmentationConfig.from_mapping(
                      values.get("augmentation", {}), f"{where}.augmentation"),
                  "cuda": CurriculumConfig.from_mapping(values.get("cuda", {}), f"{where}.cuda")}
        return super().from_mapping({**values, **nested}, where)


@_declared(P.CL_RUN)
@dataclasses.dataclass(frozen=True)
class ClassifierRunConfig(_FromMapping):
    device: str
    compile: bool | str
    channels_last: bool
    torch_threads: int
    num_workers: int
    checkpoint_every: int
    cache_dir: str | None
    deterministic: bool
    tensorboard: bool
    keep_freed_memory: bool
