"""A grid cell, typed, from the resolver to the optimiser.

``RLCell`` and ``ClassifierCell`` are what the resolvers return (``scopeloss.rl.config
.resolve``, ``scopeloss.classify.config.resolve``) and what both trainers take, with one
signature: ``train(cell, *, seed, out, run)``. A cell holds its typed sections and the
registered loss object it runs (``CellLoss``: a named variant's base, with its parameters
checked once), never a dict. ``to_json()`` is the cell's record: the rule's ``--hparams``,
the run's identity (checkpoints, ``summary.json``); ``from_json()`` reads one back, checking
every section against its declarations.

This module imports no torch (the Snakefile resolves every cell at start-up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from scopeloss import registry
from scopeloss.loss_calls import BoundLoss
from scopeloss.params import DatasetConfig, EnvConfig, ExperimentConfig, PPOConfig


@dataclass(frozen=True)
class CellLoss:
    """The loss a cell runs: its name in the grid (a variant's own), the registered loss
    object behind it and the parameter values it runs with."""

    kind: str
    name: str
    loss: registry.Loss
    params: Mapping[str, float]

    @classmethod
    def of(cls, kind: str, name: str, section: Mapping[str, Any] | None) -> CellLoss:
        """``name`` with the cell's ``loss`` section (a variant's base and parameters)."""
        base, params = registry.cell_loss(kind, name, dict(section) if section else None)
        return cls(kind, name, registry.get(kind, base), params)

    def section(self) -> dict[str, Any]:
        """The cell's ``loss`` section: the parameters, with the base of a variant."""
        return registry.resolved_loss(self.loss.name, self.name, dict(self.params))

    def bind(self) -> BoundLoss:
        """A run's own bound loss (context, state and metrics of its own)."""
        return BoundLoss(self.kind, self.loss, self.params)


@dataclass(frozen=True)
class RLCell:
    """One RL cell: the env (by its grid name and resolved section), PPO and the loss."""

    env_name: str
    env: EnvConfig
    ppo: PPOConfig
    loss: CellLoss

    @classmethod
    def from_json(cls, env_name: str, loss: str, hparams: Mapping[str, Any]) -> RLCell:
        return cls(env_name, EnvConfig.of(hparams["env"]),
                   PPOConfig.from_mapping(hparams["ppo"], "ppo"),
                   CellLoss.of("ppo", loss, hparams.get("loss")))

    def to_json(self) -> dict[str, Any]:
        return {"env": asdict(self.env), "ppo": asdict(self.ppo), "loss": self.loss.section()}

    @property
    def names(self) -> dict[str, str]:
        """What the grid calls it (the run's identity and summary start with these)."""
        return {"env": self.env_name, "loss": self.loss.name}


@dataclass(frozen=True)
class ClassifierCell:
    """One classification cell: dataset, experiment (grid names and sections) and the loss."""

    dataset_name: str
    experiment_name: str
    dataset: DatasetConfig
    experiment: ExperimentConfig
    loss: CellLoss

    @classmethod
    def from_json(cls, dataset: str, experiment: str, loss: str,
                  hparams: Mapping[str, Any]) -> ClassifierCell:
        return cls(dataset, experiment, DatasetConfig.of(hparams["dataset"]),
                   ExperimentConfig.from_mapping(hparams["experiment"]),
                   CellLoss.of("supervised", loss, hparams.get("loss")))

    def to_json(self) -> dict[str, Any]:
        return {"dataset": asdict(self.dataset), "experiment": asdict(self.experiment),
                "loss": self.loss.section()}

    @property
    def names(self) -> dict[str, str]:
        return {"dataset": self.dataset_name, "experiment": self.experiment_name,
                "loss": self.loss.name}
