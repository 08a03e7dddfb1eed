"""Train one classifier: one dataset, experiment, loss and seed.

    python -m scopeloss.classify.train --dataset caltech256 --experiment plain --loss scope \
        --seed 1 --out results/classification/caltech256/plain/scope/seed1 [--hparams JSON] \
        [--run JSON] [--set experiment.epochs=3 --set run.num_workers=4 ...]

One readable loop: batches are gathered from the decode-once, memory-mapped uint8 cache, go
to the device, are augmented there (``augment``), and feed a torchvision ResNet trained with
a loss of ``scopeloss.losses``; the step makes no host synchronisation. Each epoch is
validated; the best-validation weights are written to ``OUT/.ckpt/best-eN.pt`` when they
improve and tested at the end, with float32 logits (the classifier head runs in float32 even
under bf16 autocast). A checkpoint ``OUT/.ckpt/last.pt`` every ``run.checkpoint_every``
epochs (model, optimiser, scheduler, RNG states, history, early-stopping counter) lets a
killed run continue exactly where it stopped.

Identity of a run (what a checkpoint must match to be resumed): dataset, experiment, loss,
seed, the resolved hyperparameters and the code fingerprint
(``scopeloss.fingerprint.cell_fingerprint("classify", loss)``). Run settings (``--run``)
are not part of it. Lifecycle, logged: (1) summary.json matches the identity and every
output exists -> skip, without reading the checkpoint; (2) the final checkpoint matches but
an output is missing -> rebuild every output from it without training; (3) a matching
checkpoint -> resume; (4) otherwise start afresh. An unreadable checkpoint is moved aside
(``.corrupt``) with one line saying so; stale temporary files of a killed write are removed.

Beyond the paper (issue 15): ``experiment.sampling`` draws each epoch's images naturally
(a permutation, the paper's setting), class-balanced or square-root re-sampled, with the
run's generator (``epoch_indices``); ``experiment.cuda`` runs the CUDA curriculum (Ahn, Ko,
Yun, ICLR 2023): per-class augmentation levels, tested and updated after every epoch
(``scopeloss.classify.curriculum``), saved in the checkpoint and logged to
``cuda_levels.csv``.

Phases (torchvision's reference layout): ``engine.train_one_epoch``, the curriculum step,
``engine.evaluate`` on the validation split; then the best weights on the test split.

Outputs (atomic): ``history.csv``, ``per_class.csv``, ``summary.json`` (docs/CONTRACT.md),
and ``cuda_levels.csv`` when CUDA is on.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

from scopeloss import lifecycle

if __name__ == "__main__":  # Ctrl-C and SIGTERM honoured from here on, through every import
    lifecycle.catch_signals_early()

import numpy as np
import pandas as pd
import torch

from scopeloss import atomic, registry, seeding
from scopeloss.classify import config as C
from scopeloss.classify import curriculum as cu
from scopeloss.classify.data import DataUnavailable, check_labels, load_dataset
from scopeloss.classify.engine import (Augmenting, Compute, evaluate, make_train_step,
                                       train_one_epoch)
from scopeloss.classify.metrics import test_metrics
from scopeloss.classify.model import build_model, make_optimizer
from scopeloss.classify.sampling import epoch_indices
from scopeloss.devices import apply_determinism, bf16_autocast, keep_freed_memory, resolve_device
from scopeloss.devices import compile_mode
from scopeloss.lifecycle import stop_with_launcher
from scopeloss.losses import METRIC, board_tag, metric_columns
from scopeloss.progress import RunLogger, format_duration
from scopeloss.runinfo import run_info
from scopeloss.schedules import make_schedule
from scopeloss.cells import ClassifierCell
from scopeloss.params import ClassifierRunConfig
from scopeloss.classify.job import (EpochState, Job, best_of,
                                    check_fits, load_file, prune_best)

HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                   "epoch_time_s", "images_per_s"]
# the last epoch's test metrics in summary.json, as final_epoch_<name>
FINAL_EPOCH_METRICS = ("precision_mean", "top1", "balanced_accuracy", "many_shot_acc",
                       "medium_shot_acc", "few_shot_acc")


def train(cell: ClassifierCell, *, seed: int, out, run: ClassifierRunConfig | dict | None = None,
          on_epoch_end=None) -> dict:
    """Run (or resume, rebuild, or skip if finished) one training run of ``cell``; return its
    summary.
    ``run`` holds the run settings: resolved ones (a ``ClassifierRunConfig``, as the CLI
    passes) are used as they are, a mapping or None (the defaults) is resolved first
    (``config.resolve_run``). ``on_epoch_end(epoch)`` is called after each epoch's
    checkpoint (tests kill there)."""
    C.check_seed(seed)
    settings: ClassifierRunConfig = (
        run if isinstance(run, ClassifierRunConfig)
        else ClassifierRunConfig.from_mapping(C.resolve_run(cell, run), "run"))
    assert settings.torch_threads is not None  # resolve_run filled every null
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(settings.torch_threads)
        try:  # a device this machine lacks stops before --out is touched
            device = resolve_device(settings.device, "run.device")
        except ValueError as err:
            raise C.ConfigError(str(err)) from None
        if device.type == "cpu" and settings.keep_freed_memory:
            keep_freed_memory()
        out = lifecycle.check_out_dir(out)
        job = Job(cell, seed, out, settings, device)
        if settings.cache_dir:  # first: the default root would be created for nothing
            lifecycle.ensure_dir(settings.cache_dir, "run.cache_dir")
        lifecycle.ensure_dir(job.d.root, "dataset.root")
        with lifecycle.own_run_dir(out):  # held exclusively until the run returns
            action, ckpt = lifecycle.begin(out, job.identity, job.outputs,
                                           job.layout.checkpoint, {"epoch": int})
            if action == "skip":
                return ckpt
            restore = apply_determinism(device, settings.deterministic)
            try:
                return lifecycle.resume_or_afresh(
                    lambda found: ClassifierRun(job, on_epoch_end).train(found), ckpt,
                    job.layout.checkpoint)
            finally:
                restore()
    finally:  # in-process callers (tests) get their thread count back
        torch.set_num_threads(threads)


class ClassifierRun:
    """One classifier job from set-up to its outputs: ``train(checkpoint, best weights)``."""

    def __init__(self, job: Job, on_epoch_end=None):
        self.job, self.on_epoch_end = job, on_epoch_end
        self.loss = job.cell.loss.bind()  # the cell's registered loss, with its own state
        self.files = job.layout
        self.t_start = time.perf_counter()
        self.state = EpochState()
        self.compute = Compute(job.device, job.channels_last, self.autocast)

    # ------------------------------------------------------------------ set-up
    def autocast(self):
        return bf16_autocast(self.job.device, self.job.e.bf16)

    def evaluate(self, split):
        """(mean loss, accuracy, predictions) on ``split``, centre-cropped, in batches of
        twice the training batch (no gradients); predictions from the loss's
        ``eval_logits`` (post-hoc adjustment), its state untouched."""
        return evaluate(self.forward, split, batch_size=2 * self.job.e.batch_size,
                        image_size=self.job.d.image_size,
                        loss_fn=lambda logits, y: self.loss.supervised(logits, y, record=False),
                        compute=self.compute, predict=self.loss.eval_logits)

    def build(self) -> None:
        """Seeds, data, model, optimiser, schedule, curriculum (in this order: the seeded RNG
        streams depend on it)."""
        job, d, e, device = self.job, self.job.d, self.job.e, self.job.device
        seeding.seed_everything(job.seed)
        self.gen = torch.Generator().manual_seed(job.seed)  # shuffling and augmentation
        assert job.run.num_workers is not None  # resolve_run filled every null
        self.data = load_dataset(d, num_workers=job.run.num_workers,
                                 cache_dir=job.run.cache_dir)
        self.num_classes = len(self.data.classes)
        for name, split in self.data.splits.items():
            check_labels(split.labels, self.num_classes, f"{self.data.manifest_path} ({name})")
        self.train_counts = np.asarray(self.data.counts["train"])
        self.counts = torch.tensor(self.data.counts["train"], dtype=torch.float32).to(device)
        self.loss.set(class_counts=self.counts, progress=0.0, epoch=0)
        model = build_model(e.model, self.num_classes)
        # torch's stubs lack Module.to(device, memory_format=...), which torch has
        self.model = model.to(device, memory_format=torch.channels_last  # type: ignore[call-overload]
                              if job.channels_last else torch.contiguous_format)
        mode = compile_mode(job.run.compile)
        self.forward = torch.compile(self.model, mode=mode) if mode else self.model
        # Drop the last partial batch (BatchNorm needs > 1 sample); a new order every epoch.
        self.steps_per_epoch = max(len(self.data.splits["train"].labels) // e.batch_size, 1)
        self.opt = make_optimizer(self.model.parameters(), e)
        self.sched = make_schedule(self.opt, e.schedule, e.epochs * self.steps_per_epoch)
        self.curriculum = (cu.Curriculum(e.cuda, self.num_classes)
                           if e.cuda.enabled else None)
        self.state.sampled = np.zeros(self.num_classes, dtype=np.int64)  # images drawn per class
        self.augmenting = Augmenting(e.augmentation if e.augment else None, d.image_size,
                                     self.gen, self.curriculum)
        self.step = make_train_step(self.forward, self.loss.supervised, self.data.splits["train"],
                                    optimizer=self.opt, scheduler=self.sched,
                                    augmenting=self.augmenting, compute=self.compute)

    def restore(self, state: dict) -> None:
        if not 1 <= state["epoch"] <= self.job.e.epochs:
            raise ValueError(f"epoch {state['epoch']} of a run of {self.job.e.epochs} epochs")
        if not state["finished"]:  # a finished run's checkpoint has no training state
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            seeding.set_rng_state(state["rng"], self.gen)
            self.loss.load_state_dict(state.get("loss_state"), self.job.device)
        self.state.history, self.state.best_acc = state["history"], state["best_acc"]
        self.state.best_epoch, self.state.bad_epochs = state["best_epoch"], state["bad_epochs"]
        self.state.wall_before, self.state.finished = state["wall_time_s"], state["finished"]
        self.state.ckpt_time, self.state.ckpt_count = state["checkpoint_time_s"], state["checkpoints"]
        if self.curriculum is not None:
            self.curriculum.load_state_dict(state)
        self.state.sampled = np.asarray(state["sampled_per_class"], dtype=np.int64)
        self.state.final_test = state.get("final_test")  # None: a checkpoint from before it
        self.state.start_epoch = state["epoch"] + 1
        if not self.state.finished:
            lifecycle.log(f"resuming {self.job.out} after epoch {state['epoch']}")

    # ------------------------------------------------------------------ the loop
    def train(self, ckpt: dict | None) -> dict:
        """Train from ``ckpt`` (None: afresh); a checkpoint that cannot be restored raises
        CorruptCheckpoint (the caller moves it aside and starts afresh)."""
        job, e = self.job, self.job.e
        best = None
        if ckpt is not None:
            with lifecycle.restoring():
                best = best_of(job, ckpt)
            if best is None:
                ckpt = None
        self.build()
        if ckpt is not None:
            with lifecycle.restoring():
                self.restore(ckpt)
                assert best is not None  # else ckpt was set to None above
                check_fits(self.model, best["model"], "the best weights")
        else:
            lifecycle.log(f"{job.out}: starting afresh (epoch 1 of {e.epochs})")
        prune_best(self.files, {self.state.best_epoch} if ckpt else set())
        self.state.ckpt_best = self.state.best_epoch
        # Live view: TensorBoard scalars under OUT/tb (a resumed run drops what an interrupted
        # attempt wrote past its checkpoint), and an ETA on every epoch line.
        self.board = RunLogger(job.out, enabled=job.run.tensorboard, total=e.epochs,
                               unit="epoch", start=self.state.start_epoch - 1,
                               resume_step=self.state.start_epoch if ckpt else None)
        self.t_loop = time.perf_counter()
        self.state.checkpointed = self.state.start_epoch - 1
        try:  # Ctrl-C / SIGTERM: stop after the epoch in progress, checkpointed
            with lifecycle.StopRequests("epoch") as stop:
                for epoch in range(self.state.start_epoch, e.epochs + 1):
                    if self.state.finished:
                        break
                    self.one_epoch(epoch)
                    stop.check(epoch, None if self.state.checkpointed == epoch else
                               lambda: self.save_checkpoint(epoch))
        finally:
            self.board.close()
        if best is None or self.state.best_epoch != (ckpt or {}).get("best_epoch"):
            best = load_file(self.files.best(self.state.best_epoch))
            if best is None:
                raise lifecycle.CheckpointError(
                    f"the best weights {self.files.best(self.state.best_epoch)} vanished")
        return self.finish(best)

    def one_epoch(self, epoch: int) -> None:
        """Train one epoch, step the curriculum, validate; keep the best; checkpoint."""
        job, e, split = self.job, self.job.e, self.data.splits["train"]
        t0 = time.perf_counter()
        lr = self.opt.param_groups[0]["lr"]
        perm = epoch_indices(split.labels, self.train_counts, e.sampling, self.gen)
        bs = e.batch_size
        self.state.sampled += np.bincount(split.labels[perm[:self.steps_per_epoch * bs]],
                                    minlength=self.num_classes)
        self.loss.set(progress=(epoch - 1) / e.epochs, epoch=epoch - 1)
        train_loss, train_acc, seen, metrics = train_one_epoch(
            self.step, self.model, perm, self.steps_per_epoch, bs, job.device, loss=self.loss)
        if not math.isfinite(train_loss):  # the epoch's one sync; never checkpoint NaN weights
            raise lifecycle.LossFailure(
                f"non-finite loss ({train_loss}) in epoch {epoch} with supervised loss "
                f"{self.loss.name!r}; " + lifecycle.last_good(
                    "epoch", self.state.checkpointed, self.files.checkpoint))
        train_time = time.perf_counter() - t0
        if self.curriculum is not None:
            self.curriculum.step(epoch, self.forward, self.model, split,
                                 augmenting=self.augmenting, batch_size=2 * bs,
                                 compute=self.compute, classes=self.data.classes,
                                 train_counts=self.train_counts)
            self.curriculum.write(job.out)
        val_loss, val_acc, _ = self.evaluate(self.data.splits["val"])
        self.state.history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                             "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
                             "epoch_time_s": time.perf_counter() - t0,  # train + val
                             "images_per_s": seen / train_time,
                             **{f"{METRIC}{k}": v for k, v in metrics.items()}})
        if val_acc > self.state.best_acc:
            self.state.best_acc, self.state.best_epoch, self.state.bad_epochs = val_acc, epoch, 0
            self.save_best(epoch)
        else:
            self.state.bad_epochs += 1
        patience = e.early_stopping_patience
        self.state.finished = epoch == e.epochs or (patience is not None
                                                 and self.state.bad_epochs >= patience)
        if self.state.finished:  # before the last weights are dropped from the checkpoint
            self.state.final_test = self.final_epoch_test()
        self.report(epoch)
        self.write_history()
        if self.state.finished or epoch % job.run.checkpoint_every == 0:
            self.save_checkpoint(epoch)
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch)

    def final_epoch_test(self) -> dict:
        """The last epoch's weights on the test split, beside the best-validation epoch's
        that the run reports (CORL's "last and best"; the claims use the reported ones)."""
        test = self.data.splits["test"]
        _, metrics = test_metrics(test.labels, self.evaluate(test)[2], self.data.classes,
                                  self.data.counts["train"], self.job.d.kind)
        return {f"final_epoch_{k}": metrics[k] for k in FINAL_EPOCH_METRICS}

    def write_history(self) -> None:
        history = self.state.history
        atomic.write_csv(self.job.out / "history.csv", pd.DataFrame(
            history, columns=metric_columns(history, HISTORY_COLUMNS)))

    def report(self, epoch: int) -> None:
        row, e = self.state.history[-1], self.job.e
        levels = self.curriculum.levels if self.curriculum is not None else None
        self.board.scalars(epoch, {**{board_tag(k): v for k, v in row.items()
                                      if k not in ("epoch", "images_per_s")},
                                   "perf/images_per_s": row["images_per_s"],
                                   **({"cuda/mean_level": float(levels.mean())}
                                      if levels is not None else {})})
        per_epoch = (time.perf_counter() - self.t_loop) / (epoch - self.state.start_epoch + 1)
        eta = 0.0 if self.state.finished else per_epoch * (e.epochs - epoch)  # may stop early
        lifecycle.log(f"epoch {epoch}: train_loss {row['train_loss']:.4f} train_acc "
                      f"{row['train_acc']:.4f} val_acc {row['val_acc']:.4f} "
                      f"({row['epoch_time_s']:.1f}s, {row['images_per_s']:.0f} images/s, "
                      f"ETA {format_duration(eta)})")

    # ------------------------------------------------------------------ files
    def save_best(self, epoch: int) -> None:
        t1 = time.perf_counter()
        lifecycle.save_checkpoint(self.files.best(epoch), {
            "identity": self.job.identity, "epoch": epoch,
            "model": {k: v.detach().to("cpu", copy=True)
                      for k, v in self.model.state_dict().items()},
            "loss_state": self.loss.state_dict()})  # what its predictions are made with
        prune_best(self.files, {epoch, self.state.ckpt_best})
        self.state.ckpt_time += time.perf_counter() - t1

    def save_checkpoint(self, epoch: int) -> None:
        t0 = time.perf_counter()
        self.state.ckpt_count += 1
        # A finished run keeps only what a rebuild of its outputs reads: the history and
        # counters here, the best weights in best-eN.pt (not the last weights, optimiser,
        # schedule: 3/4 of a ResNet run's disk).
        training = {} if self.state.finished else {
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "rng": seeding.rng_state(self.gen),
            "loss_state": self.loss.state_dict()}
        lifecycle.save_checkpoint(self.files.checkpoint, {
            "identity": self.job.identity, "epoch": epoch, "finished": self.state.finished,
            **training,
            "history": self.state.history, "best_acc": self.state.best_acc, "best_epoch": self.state.best_epoch,
            "bad_epochs": self.state.bad_epochs,
            "wall_time_s": self.state.wall_before + time.perf_counter() - self.t_start,
            "checkpoint_time_s": self.state.ckpt_time, "checkpoints": self.state.ckpt_count,
            **(self.curriculum.state_dict() if self.curriculum is not None else {}),
            "sampled_per_class": self.state.sampled.copy(), "final_test": self.state.final_test})
        self.state.ckpt_best = self.state.best_epoch
        prune_best(self.files, {self.state.best_epoch})
        self.state.ckpt_time += time.perf_counter() - t0
        self.state.checkpointed = epoch

    def finish(self, best: dict) -> dict:
        """Test the best-validation weights; write every output; return the summary."""
        job, e, test = self.job, self.job.e, self.data.splits["test"]
        self.model.load_state_dict(best["model"])
        self.loss.load_state_dict(best.get("loss_state"), job.device)
        table, metrics = test_metrics(test.labels, self.evaluate(test)[2], self.data.classes,
                                      self.data.counts["train"], job.d.kind)
        epochs_run = len(self.state.history)
        summary = {
            **job.identity, **metrics,
            "best_epoch": self.state.best_epoch, "best_val_acc": self.state.best_acc,
            "epochs_run": epochs_run, "stopped_early": epochs_run < e.epochs,
            "num_classes": self.num_classes, "train_size": len(self.data.splits["train"].labels),
            "test_size": len(test.labels), "manifest": str(self.data.manifest_path),
            "manifest_hash": self.data.manifest_hash,
            "run_settings": {**dataclasses.asdict(job.run), "device": str(job.device),
                             "cache_dir": str(Path(self.data.cache_paths["train"]).parent)},
            "run_info": run_info(job.device),
            "checkpoint_time_s": self.state.ckpt_time, "checkpoints": self.state.ckpt_count,
            "sampling": e.sampling, "sampled_per_class": self.state.sampled.tolist(),
            "sampled_per_class_per_epoch": (self.state.sampled / max(epochs_run, 1)).tolist(),
            "wall_time_s": self.state.wall_before + time.perf_counter() - self.t_start,
            **(self.state.final_test or dict.fromkeys(
                f"final_epoch_{k}" for k in FINAL_EPOCH_METRICS)),
        }
        if self.curriculum is not None:
            summary["cuda_levels_final"] = self.curriculum.levels.tolist()
            self.curriculum.write(job.out)
        self.write_history()
        atomic.write_csv(job.out / "per_class.csv", table)
        atomic.write_json(job.out / "summary.json", summary)
        lifecycle.log(f"{job.out}: top1 {summary['top1']:.4f} precision mean "
                      f"{summary['precision_mean']:.4f} std {summary['precision_std']:.4f} "
                      f"(best epoch {self.state.best_epoch})")
        return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scopeloss.classify.train",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help=f"one of {', '.join(C.DATASETS)}")
    p.add_argument("--experiment", required=True, help=f"one of {', '.join(C.EXPERIMENTS)}")
    p.add_argument("--loss", required=True, help="a registered supervised loss (built-in: "
                   f"{', '.join(registry.names('supervised'))}; or one of a --loss-module)")
    p.add_argument("--loss-module", action="append", default=[], metavar="PATH_OR_MODULE",
                   help="a module that registers losses of your own (repeatable)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--hparams", default=None, help="inline JSON object or path to a .json file")
    p.add_argument("--run", default=None,
                   help="run settings: inline JSON object or path to a .json file "
                        f"(keys: {', '.join(C.RUN)})")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one hyperparameter, or a run setting as run.KEY=VALUE "
                        "(value parsed as YAML); repeatable")
    return p


def main(argv=None) -> int:
    lifecycle.imports_done()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # every bad argument: argparse's error (exit 2, no traceback), as the RL CLI
        C.check_seed(args.seed, "--seed")
        registry.load_modules(args.loss_module, "--loss-module")
        sets, run_sets = C.split_run(C.parse_set(args.set))
        cell = C.resolve(args.dataset, args.experiment, args.loss,
                         C.load_hparams(args.hparams), sets)
        run = ClassifierRunConfig.from_mapping(
            C.resolve_run(cell, C.load_run(args.run), run_sets), "run")
    except ValueError as err:
        parser.error(str(err))
    stop_with_launcher(lifecycle.log)
    try:
        return lifecycle.trainer_exit_code(
            lambda: train(cell, seed=args.seed, out=args.out, run=run), "epoch")
    except (C.ConfigError, DataUnavailable) as err:  # --out, or the data a job needs: said
        parser.error(str(err))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before training began (imports, argument checks)
        line, code = lifecycle.outside_the_loop("epoch")
        print(line, file=sys.stderr)
        sys.exit(code)
