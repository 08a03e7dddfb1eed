"""Train one classifier: one dataset, experiment, loss and seed.

    python -m scopeloss.classify.train --dataset caltech256 --experiment plain --loss scope \
        --seed 1 --out results/classification/caltech256/plain/scope/seed1 [--hparams JSON] \
        [--set experiment.epochs=3 ...]

One readable loop: batches come from the decode-once uint8 cache, go to the device, are
augmented there (``augment``), and feed a torchvision ResNet trained with a loss of
``scopeloss.losses``. Each epoch is validated; the best-validation weights are kept and
evaluated on the test set at the end. A checkpoint in ``OUT/.ckpt/`` after every
``checkpoint_every`` epochs (model, optimiser, scheduler, RNG states, history, best state,
early-stopping counter) lets a killed run continue where it stopped; a finished run exits.

Outputs (atomic): ``history.csv``, ``per_class.csv``, ``summary.json`` (docs/CONTRACT.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision

from scopeloss import io
from scopeloss.classify import augment as aug
from scopeloss.classify import config as C
from scopeloss.classify.data import DataUnavailable, load_dataset
from scopeloss.classify.metrics import per_class_table, summarize
from scopeloss.devices import bf16_autocast, resolve_device, use_fast_cuda_kernels
from scopeloss.losses import supervised_loss
from scopeloss.runinfo import run_info

OUTPUTS = ("history.csv", "per_class.csv", "summary.json")
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s"]


def make_optimizer(params, e: dict) -> torch.optim.Optimizer:
    if e["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=e["lr"], weight_decay=e["weight_decay"])
    return torch.optim.SGD(params, lr=e["lr"], momentum=e["momentum"],
                           weight_decay=e["weight_decay"])


def make_scheduler(opt, e: dict, total_steps: int):
    if e["schedule"] == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    # Cosine decay per step from lr to 0 at the end of the epoch budget.
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))


def to_device(images: np.ndarray, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    """Gather uint8 (B, S, S, 3) rows and return them as (B, 3, S, S) on ``device``; the
    permuted view of NHWC memory is already channels_last."""
    batch = torch.from_numpy(np.ascontiguousarray(images[idx]))
    if device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    return batch.permute(0, 3, 1, 2)


def prepare_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = aug.normalize(x)
    return x.contiguous(memory_format=torch.channels_last if channels_last else
                        torch.contiguous_format)


@torch.no_grad()
def evaluate(model, split, e, dcfg, device, loss_fn, autocast, channels_last):
    """(mean loss, accuracy, predictions) of ``model`` on ``split``, centre-cropped."""
    model.eval()
    n = len(split.labels)
    bs = 2 * e["batch_size"]
    loss_sum = torch.zeros((), device=device)
    preds = []
    for start in range(0, n, bs):
        idx = np.arange(start, min(start + bs, n))
        x = prepare_input(aug.eval_batch(to_device(split.images, idx, device),
                                         dcfg["image_size"]), channels_last)
        y = torch.from_numpy(split.labels[idx]).to(device)
        with autocast():
            logits = model(x)
        loss_sum += loss_fn(logits, y).float() * len(idx)
        preds.append(logits.argmax(1).cpu())
    preds = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
    return float(loss_sum) / max(n, 1), float((preds == split.labels).mean()), preds


def _rng_state(gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(), "data": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    gen.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(dataset: str, experiment: str, loss: str, seed: int, out, hparams: dict,
          on_epoch_end=None) -> dict:
    """Run (or resume, or skip if finished) one training run; return its summary.
    ``on_epoch_end(epoch)`` is called after each epoch's checkpoint (tests kill there)."""
    threads = torch.get_num_threads()
    try:
        if hparams["experiment"]["torch_threads"]:
            torch.set_num_threads(hparams["experiment"]["torch_threads"])
        return _train(dataset, experiment, loss, seed, out, hparams, on_epoch_end)
    finally:  # in-process callers (tests) get their thread count back
        torch.set_num_threads(threads)


def _train(dataset, experiment, loss, seed, out, hparams, on_epoch_end) -> dict:
    t_start = time.perf_counter()
    out = Path(out)
    ckpt_dir = out / ".ckpt"
    d, e, lcfg = hparams["dataset"], hparams["experiment"], hparams["loss"]
    identity = {"dataset": dataset, "experiment": experiment, "loss": loss, "seed": seed,
                "hparams": hparams}

    state = None
    if (ckpt_dir / "last.pt").is_file():
        state = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=False)
        if state["identity"] != identity:
            print(f"{ckpt_dir}: checkpoint of a different configuration, starting afresh",
                  file=sys.stderr)
            state = None
        elif state["finished"] and all((out / f).is_file() for f in OUTPUTS):
            print(f"{out}: already finished (epoch {state['epoch']}), nothing to do",
                  file=sys.stderr)
            return json.loads((out / "summary.json").read_text())

    try:
        device = resolve_device(e["device"], "experiment.device")
    except ValueError as err:
        raise C.ConfigError(str(err)) from None
    channels_last = device.type == "cuda" and e["channels_last"]
    use_fast_cuda_kernels(device)

    def autocast():
        return bf16_autocast(device, e["bf16"])

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # shuffling and augmentation

    workers = e["num_workers"] if e["num_workers"] is not None else min(8, os.cpu_count() or 1)
    data = load_dataset(d, num_workers=workers)
    train_split, val_split, test_split = (data.splits[s] for s in ("train", "val", "test"))
    num_classes = len(data.classes)
    counts = torch.tensor(data.counts["train"], dtype=torch.float32, device=device)

    def loss_fn(logits, targets):
        return supervised_loss(loss, logits, targets, alpha=lcfg["alpha"], gamma=lcfg["gamma"],
                               class_counts=counts)

    model = torchvision.models.get_model(e["model"], weights=None, num_classes=num_classes)
    model = model.to(device, memory_format=torch.channels_last if channels_last else
                     torch.contiguous_format)
    forward = torch.compile(model) if e["compile"] else model
    n_train, bs = len(train_split.labels), e["batch_size"]
    # Drop the last partial batch (BatchNorm needs > 1 sample); a new order every epoch.
    steps_per_epoch = max(n_train // bs, 1)
    opt = make_optimizer(model.parameters(), e)
    sched = make_scheduler(opt, e, e["epochs"] * steps_per_epoch)

    history: list[dict] = []
    best_state = None
    start_epoch, best_acc, best_epoch, bad_epochs, wall_before = 1, -1.0, 0, 0, 0.0
    finished = False
    if state is not None:
        model.load_state_dict(state["model"])
        best_state = state["model"] if state["best_model"] is None else state["best_model"]
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], gen)
        history, best_acc, best_epoch = state["history"], state["best_acc"], state["best_epoch"]
        bad_epochs, wall_before, finished = state["bad_epochs"], state["wall_time_s"], state["finished"]
        start_epoch = state["epoch"] + 1
        print(f"resuming {out} after epoch {state['epoch']}", file=sys.stderr)

    def save_checkpoint(epoch: int, done: bool) -> None:
        io.torch_save(ckpt_dir / "last.pt", {
            "identity": identity, "epoch": epoch, "finished": done,
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            # The best weights travel in the same file, so a kill can never pair them with
            # another epoch's bookkeeping.
            "best_model": None if best_epoch == epoch else best_state,
            "scheduler": sched.state_dict(), "rng": _rng_state(gen), "history": history,
            "best_acc": best_acc, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
            "wall_time_s": wall_before + time.perf_counter() - t_start})

    epoch = start_epoch - 1
    for epoch in range(start_epoch, e["epochs"] + 1):
        if finished:
            break
        t0 = time.perf_counter()
        model.train()
        lr = opt.param_groups[0]["lr"]
        perm = torch.randperm(n_train, generator=gen).numpy()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for step in range(steps_per_epoch):
            idx = np.sort(perm[step * bs:(step + 1) * bs])  # sorted: sequential cache reads
            xb = to_device(train_split.images, idx, device)
            yb = torch.from_numpy(train_split.labels[idx]).to(device, non_blocking=True)
            if e["augment"]:
                x = aug.augment_batch(xb, d["image_size"], e["augmentation"], gen)
            else:
                x = aug.eval_batch(xb, d["image_size"])
            x = prepare_input(x, channels_last)
            with autocast():
                logits = forward(x)
            loss_value = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss_value.backward()
            opt.step()
            sched.step()
            loss_sum += loss_value.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
            seen += len(idx)
        val_loss, val_acc, _ = evaluate(forward, val_split, e, d, device, loss_fn, autocast,
                                        channels_last)
        history.append({"epoch": epoch, "train_loss": float(loss_sum) / seen,
                        "train_acc": float(correct) / seen, "val_loss": val_loss,
                        "val_acc": val_acc, "lr": lr,
                        "epoch_time_s": time.perf_counter() - t0})
        if val_acc > best_acc:
            best_acc, best_epoch, bad_epochs = val_acc, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        patience = e["early_stopping_patience"]
        finished = epoch == e["epochs"] or (patience is not None and bad_epochs >= patience)
        print(f"epoch {epoch}: train_loss {history[-1]['train_loss']:.4f} "
              f"train_acc {history[-1]['train_acc']:.4f} val_acc {val_acc:.4f} "
              f"({history[-1]['epoch_time_s']:.1f}s)", file=sys.stderr, flush=True)
        io.write_csv(out / "history.csv", pd.DataFrame(history, columns=HISTORY_COLUMNS))
        if finished or epoch % e["checkpoint_every"] == 0:
            save_checkpoint(epoch, finished)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    epochs_run = len(history)

    # Test the best-validation weights.
    model.load_state_dict(best_state)
    _, _, preds = evaluate(forward, test_split, e, d, device, loss_fn, autocast, channels_last)
    table = per_class_table(test_split.labels, preds, data.classes, data.counts["train"])
    summary = {
        "dataset": dataset, "experiment": experiment, "loss": loss, "seed": seed,
        **summarize(test_split.labels, preds, table),
        "best_epoch": best_epoch, "best_val_acc": best_acc, "epochs_run": epochs_run,
        "stopped_early": epochs_run < e["epochs"],
        "num_classes": num_classes, "train_size": n_train, "test_size": len(test_split.labels),
        "manifest": str(data.manifest_path), "manifest_hash": data.manifest_hash,
        "hparams": hparams, "run_info": run_info(device),
        "wall_time_s": wall_before + time.perf_counter() - t_start,
    }
    io.write_csv(out / "history.csv", pd.DataFrame(history, columns=HISTORY_COLUMNS))
    io.write_csv(out / "per_class.csv", table)
    io.write_json(out / "summary.json", summary)
    print(f"{out}: top1 {summary['top1']:.4f} precision mean {summary['precision_mean']:.4f} "
          f"std {summary['precision_std']:.4f} (best epoch {best_epoch})", file=sys.stderr)
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m scopeloss.classify.train",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help=f"one of {', '.join(C.DATASETS)}")
    p.add_argument("--experiment", required=True, help=f"one of {', '.join(C.EXPERIMENTS)}")
    p.add_argument("--loss", required=True, help="a name of scopeloss.losses.SUPERVISED_LOSSES")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--hparams", default=None, help="inline JSON object or path to a .json file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one hyperparameter (value parsed as YAML); repeatable")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        try:  # --hparams/--set parse errors are plain ValueErrors
            overrides = C.load_hparams(args.hparams), C.parse_set(args.set)
        except ValueError as err:
            raise C.ConfigError(str(err)) from None
        hparams = C.resolve(args.dataset, args.experiment, args.loss, *overrides)
        train(args.dataset, args.experiment, args.loss, args.seed, args.out, hparams)
    except (C.ConfigError, DataUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
