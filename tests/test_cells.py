"""The typed cell from the grid to the optimiser (scopeloss.cells): every cell of every
shipped config reads back from its record unchanged, both trainers take it with one
signature, and a run looks its loss up nowhere (the cell holds the registered object)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from scopeloss import grid, registry
from scopeloss.cells import ClassifierCell, RLCell
from scopeloss.classify import config as cl_config
from scopeloss.classify import train as cl_train
from scopeloss.params import PPOConfig
from scopeloss.rl import config as rl_config
from scopeloss.rl import ppo

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["config.yaml", *sorted(str(p.relative_to(ROOT))
                                         for p in (ROOT / "presets").glob("*.yaml"))]


@pytest.mark.parametrize("overlay", CONFIGS)
def test_every_shipped_cell_round_trips_through_its_record(overlay, monkeypatch):
    monkeypatch.chdir(ROOT)
    files = ["config.yaml"] + ([overlay] if overlay != "config.yaml" else [])
    config = grid.load_config(*files)
    grid.load_loss_modules(config)
    for env, loss in dict.fromkeys(run[:-1] for run in grid.rl_runs(config)):
        record = grid.rl_cell(config, env, loss)
        cell = RLCell.from_json(env, loss, record)
        assert cell.to_json() == record and isinstance(cell.ppo, PPOConfig)
        assert cell.loss.loss is registry.get("ppo", cell.loss.loss.name)
    for dataset, experiment, loss in dict.fromkeys(
            run[:-1] for run in grid.classification_runs(config)):
        record = grid.classification_cell(config, dataset, experiment, loss)
        cell = ClassifierCell.from_json(dataset, experiment, loss, record)
        assert cell.to_json() == record
        assert cell.names == {"dataset": dataset, "experiment": experiment, "loss": loss}


def test_both_trainers_take_the_cell_with_one_signature():
    for train in (ppo.train, cl_train.train):
        params = inspect.signature(train).parameters
        assert list(params)[:4] == ["cell", "seed", "out", "run"], train.__module__
        assert params["seed"].kind is inspect.Parameter.KEYWORD_ONLY
    assert isinstance(rl_config.resolve("CartPole-v1", "scope"), RLCell)
    assert isinstance(cl_config.resolve("digits_lt", "plain", "scope"), ClassifierCell)
    cell = rl_config.resolve("CartPole-v1", "scope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.ppo.lr = 1.0  # type: ignore[misc]


def test_a_run_looks_its_loss_up_nowhere(tmp_path, monkeypatch):
    """Once resolved, the cell's loss object is what the update calls: a registry with
    nothing left in it does not stop the run."""
    cell = rl_config.resolve("CartPole-v1", "scope", {"ppo": {
        "total_steps": 256, "num_envs": 2, "num_steps": 64, "num_minibatches": 2,
        "update_epochs": 1}})
    bound = cell.loss.bind()
    assert bound.loss is cell.loss.loss and bound.params == {"alpha": 0.01}

    def no_lookup(*args, **kwargs):
        raise AssertionError("the registry was consulted during the run")

    monkeypatch.setattr(registry, "get", no_lookup)
    monkeypatch.setattr(registry, "cell_loss", no_lookup)
    summary = ppo.train(cell, seed=1, out=tmp_path, log=lambda _: None,
                        run={"device": "cpu", "torch_threads": 1, "tensorboard": False})
    assert summary["global_step"] == 256 and summary["loss"] == "scope"
    assert summary["hparams"] == cell.to_json()
