"""A classifier job: what it learns and how it runs (``Job``: its identity, outputs and
typed sections), what it has done so far (``EpochState``, what a checkpoint holds), and
its checkpoint files (``last.pt`` and the best epoch's weights,
``best-e<N>.pt``, in ``--out/.ckpt``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from scopeloss import lifecycle
from scopeloss.cells import ClassifierCell
from scopeloss.classify import curriculum as cu
from scopeloss.fingerprint import cell_fingerprint
from scopeloss.params import ClassifierRunConfig, DatasetConfig, ExperimentConfig

OUTPUTS = ("history.csv", "per_class.csv", "summary.json")


@dataclass(frozen=True)
class Job:
    """One classifier run: what it learns (its cell and seed) and how it runs (``run``
    settings, the device)."""

    cell: ClassifierCell
    seed: int
    out: Path
    run: ClassifierRunConfig
    device: torch.device

    @property
    def d(self) -> DatasetConfig:
        """The dataset section (its kind's own keys in a subclass)."""
        return self.cell.dataset

    @property
    def e(self) -> ExperimentConfig:
        return self.cell.experiment

    @property
    def channels_last(self) -> bool:
        return self.device.type == "cuda" and self.run.channels_last

    @property
    def layout(self) -> lifecycle.RunLayout:
        return lifecycle.layout(self.out, "classify")

    @cached_property
    def identity(self) -> dict:
        return {**self.cell.names, "seed": self.seed, "hparams": self.cell.to_json(),
                "code_fingerprint": cell_fingerprint("classify", self.cell.loss.loss)}

    @property
    def outputs(self) -> tuple[str, ...]:
        return OUTPUTS + ((cu.OUTPUT,) if self.e.cuda.enabled else ())


def prune_best(files: lifecycle.RunLayout, keep: set[int]) -> None:
    """Remove the best-epoch weights of every epoch but ``keep``."""
    for f in files.ckpt_dir.glob("best-e*.pt"):
        try:
            epoch = int(f.stem[len("best-e"):])
        except ValueError:
            continue
        if epoch not in keep:
            f.unlink(missing_ok=True)


def load_file(path: Path):
    """The checkpoint at ``path``, None when absent or unreadable (then moved aside)."""
    return lifecycle.load_checkpoint(path, {"identity": dict, "epoch": int, "model": dict})


def best_of(job: Job, ckpt: dict | None) -> dict | None:
    """The best-validation checkpoint a checkpoint refers to (``model``: its weights;
    ``loss_state``: the loss's state then), None if missing or not matching."""
    if ckpt is None:
        return None
    ckpt_dir = job.layout.ckpt_dir
    best = load_file(job.layout.best(ckpt["best_epoch"]))
    if best is None or best["identity"] != job.identity or best["epoch"] != ckpt["best_epoch"]:
        lifecycle.log(f"{ckpt_dir}: the best weights of epoch {ckpt['best_epoch']} are missing "
                      "or do not match the checkpoint, starting afresh")
        return None
    return best


def check_fits(model: torch.nn.Module, weights: dict, what: str) -> None:
    """``weights`` has exactly ``model``'s tensors, shapes included (else ValueError)."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in weights.items()}
    if got != want:
        wrong = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        raise ValueError(f"{what} do not fit the model ({len(wrong)} tensors missing or of "
                         f"another shape, e.g. {wrong[0]})")


@dataclass
class EpochState:
    """Everything a classifier job has done so far, in one object created with the run:
    the epochs' history, the best epoch, early stopping, time and checkpoint counters, the
    images drawn per class. A checkpoint holds it (``save_checkpoint``), a resume restores it."""

    history: list[dict] = field(default_factory=list)
    start_epoch: int = 1
    best_acc: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    finished: bool = False
    wall_before: float = 0.0
    ckpt_time: float = 0.0
    ckpt_count: int = 0
    checkpointed: int = 0  # the last epoch a checkpoint was written for
    ckpt_best: int = 0  # the best file the last written checkpoint refers to
    sampled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    final_test: dict | None = None  # the last epoch's test metrics, once finished
