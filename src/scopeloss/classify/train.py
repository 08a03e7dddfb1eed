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
(``scopeloss.fingerprint.code_fingerprint(TRAINERS["classify"])``). Run settings (``--run``)
are not part of it. Lifecycle, logged: (1) summary.json matches the identity and every
output exists -> skip, without reading the checkpoint; (2) the final checkpoint matches but
an output is missing -> rebuild every output from it without training; (3) a matching
checkpoint -> resume; (4) otherwise start afresh. An unreadable checkpoint is moved aside
(``.corrupt``) with one line saying so; stale temporary files of a killed write are removed.

Beyond the paper (issue 15): ``experiment.sampling`` draws each epoch's images naturally
(a permutation, the paper's setting), class-balanced or square-root re-sampled, with the
run's generator (``epoch_indices``); ``experiment.cuda`` runs the CUDA curriculum (Ahn, Ko,
Yun, ICLR 2023): per-class augmentation levels, tested and updated after every epoch
(``cuda_level_test``, ``cuda_update``), saved in the checkpoint and logged to
``cuda_levels.csv``.

Outputs (atomic): ``history.csv``, ``per_class.csv``, ``summary.json`` (docs/CONTRACT.md),
and ``cuda_levels.csv`` when CUDA is on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision

from scopeloss import io
from scopeloss.classify import augment as aug
from scopeloss.classify import config as C
from scopeloss.classify.data import DataUnavailable, load_dataset
from scopeloss.classify.metrics import per_class_table, summarize
from scopeloss.devices import bf16_autocast, resolve_device, use_fast_cuda_kernels
from scopeloss.fingerprint import TRAINERS, code_fingerprint
from scopeloss.lifecycle import RunDirBusy, own_run_dir, stop_with_launcher
from scopeloss.losses import supervised_loss
from scopeloss.progress import RunLogger, format_duration
from scopeloss.runinfo import run_info

OUTPUTS = ("history.csv", "per_class.csv", "summary.json")
CUDA_OUTPUT = "cuda_levels.csv"
CUDA_COLUMNS = ["epoch", "class", "name", "train_count", "level", "accuracy", "next_level"]
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                   "epoch_time_s", "images_per_s"]
# Labels and class counts are validated once where data enters (``check_labels``), so the
# loss skips its per-call value checks (each a device->host sync).
_LOSS_OPTS = {"check_range": False}


class CheckpointError(OSError):
    """A checkpoint could not be written (the message names the file and the OS error)."""


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


class Float32Linear(torch.nn.Linear):
    """A Linear layer that computes in float32 with autocast off: the classifier head, so
    logits (and their argmax) are never rounded to bf16. Same parameters and state_dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.weight.float(),
                            None if self.bias is None else self.bias.float())


def build_model(name: str, num_classes: int) -> torch.nn.Module:
    """A torchvision model whose last Linear layer (the head) runs in float32."""
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    heads = [m for m in model.modules() if type(m) is torch.nn.Linear]
    if heads:
        heads[-1].__class__ = Float32Linear
    return model


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """Validate labels once, on the host, where data enters (not per step on the device)."""
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataUnavailable(f"{where}: labels must lie in [0, {num_classes - 1}], got "
                              f"min {labels.min()}, max {labels.max()}")


def to_device(images: np.ndarray, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    """Gather uint8 (B, S, S, 3) rows from the (memory-mapped) cache and return them as
    (B, 3, S, S) on ``device``, copied without blocking; the permuted view of NHWC memory
    is already channels_last."""
    batch = torch.from_numpy(np.ascontiguousarray(images[idx]))
    return aug.host_to_device(batch, device).permute(0, 3, 1, 2)


def labels_to_device(labels: np.ndarray, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    return aug.host_to_device(torch.from_numpy(labels[idx]), device)


def prepare_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = aug.normalize(x)
    return x.contiguous(memory_format=torch.channels_last if channels_last else
                        torch.contiguous_format)


def make_train_step(forward, opt, sched, loss_fn, split, image_size: int, augment_cfg,
                    gen: torch.Generator, device: torch.device, channels_last: bool, autocast,
                    cuda_cfg: dict | None = None, levels: torch.Tensor | None = None):
    """The trainer's step (the benchmark times this same function): gather a batch from the
    cache, copy it to the device, augment (or centre-crop), normalise, forward, loss,
    backward, optimiser and scheduler step. Returns the (loss, correct) device scalars;
    nothing in it waits for the device. With ``cuda_cfg``, ``levels`` is the (classes,)
    tensor of CUDA levels on the device (updated in place between epochs), gathered by
    label into per-image strengths."""

    def step(idx: np.ndarray):
        xb = to_device(split.images, idx, device)
        yb = labels_to_device(split.labels, idx, device)
        if augment_cfg is not None:
            x = aug.augment_batch(xb, image_size, augment_cfg, gen, cuda_cfg=cuda_cfg,
                                  levels=None if cuda_cfg is None else levels[yb])
        else:
            x = aug.eval_batch(xb, image_size)
        x = prepare_input(x, channels_last)
        with autocast():
            logits = forward(x)
        loss_value = loss_fn(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss_value.backward()
        opt.step()
        sched.step()
        return loss_value.detach(), (logits.detach().argmax(1) == yb).sum()

    return step


@torch.no_grad()
def evaluate(model, split, e, dcfg, device, loss_fn, autocast, channels_last):
    """(mean loss, accuracy, predictions) of ``model`` on ``split``, centre-cropped; the
    predictions are the argmax of float32 logits (the head runs in float32)."""
    model.eval()
    n = len(split.labels)
    bs = 2 * e["batch_size"]
    loss_sum = torch.zeros((), device=device)
    preds = []
    for start in range(0, n, bs):
        idx = np.arange(start, min(start + bs, n))
        x = prepare_input(aug.eval_batch(to_device(split.images, idx, device),
                                         dcfg["image_size"]), channels_last)
        y = labels_to_device(split.labels, idx, device)
        with autocast():
            logits = model(x)
        logits = logits.float()
        loss_sum += loss_fn(logits, y).float() * len(idx)
        preds.append(logits.argmax(1))
    preds = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, dtype=np.int64)
    return float(loss_sum) / max(n, 1), float((preds == split.labels).mean()), preds


# --- re-sampling and the CUDA curriculum (beyond the paper) ------------------------------
def class_probabilities(counts, sampling: str) -> np.ndarray:
    """Probability of drawing each class per draw: natural n_c / n, class_balanced uniform
    over the classes that have images, sqrt proportional to sqrt(n_c)."""
    n = np.asarray(counts, dtype=np.float64)
    if sampling == "natural":
        w = n
    elif sampling == "class_balanced":
        w = (n > 0).astype(np.float64)
    elif sampling == "sqrt":
        w = np.sqrt(n)
    else:
        raise C.ConfigError(f"unknown experiment.sampling {sampling!r}")
    return w / w.sum()


def epoch_indices(labels: np.ndarray, counts, sampling: str, gen: torch.Generator) -> np.ndarray:
    """The training-image indices of one epoch, as many as the training set, drawn with the
    run's generator: a permutation for natural sampling (the paper's setting), else images
    drawn with replacement with weight p_c / n_c (``class_probabilities``)."""
    n = len(labels)
    if sampling == "natural":
        return torch.randperm(n, generator=gen).numpy()
    counts = np.asarray(counts, dtype=np.float64)
    per_image = class_probabilities(counts, sampling)[labels] / counts[labels]
    weights = torch.from_numpy(per_image)
    return torch.multinomial(weights, n, replacement=True, generator=gen).numpy()


def cuda_update(levels: np.ndarray, correct: np.ndarray, trials: np.ndarray, threshold: float,
                max_level: int) -> tuple[np.ndarray, np.ndarray]:
    """CUDA's step rule (authors' code, update_score_base): class c at level L goes to L + 1
    when its accuracy at every tested level 0..L exceeds ``threshold``, else to L - 1,
    clamped to [0, max_level]. ``correct``/``trials`` are (classes, max_level + 1). Returns
    (new levels, the lowest accuracy over the tested levels per class; nan if untested)."""
    levels = np.asarray(levels, dtype=np.int64)
    new, worst = levels.copy(), np.full(len(levels), np.nan)
    for c, level in enumerate(levels):
        t = trials[c, :level + 1]
        ratio = np.divide(correct[c, :level + 1], t, out=np.full(level + 1, np.nan),
                          where=t > 0)
        up = bool(np.all(ratio > threshold))  # nan (never tested) counts as not fitted
        new[c] = min(level + 1, max_level) if up else max(level - 1, 0)
        worst[c] = np.nan if np.isnan(ratio).all() else np.nanmin(ratio)
    return new, worst


@torch.no_grad()
def cuda_level_test(forward, model, split, levels: np.ndarray, cuda_cfg: dict, augment_cfg,
                    image_size: int, batch_size: int, gen: torch.Generator, device, autocast,
                    channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """CUDA's Level-of-Learning test: for every class c and level l <= levels[c],
    num_test * (l + 1) training images of c (drawn with replacement by ``gen``) augmented
    at level l (always applied) and classified in eval mode. Returns (correct, trials),
    each (classes, max_level + 1); one host sync at the end."""
    num_classes, width = len(levels), cuda_cfg["max_level"] + 1
    idx, lvl = [], []
    for c in range(num_classes):
        members = np.flatnonzero(split.labels == c)
        if members.size == 0:
            continue
        for level in range(int(levels[c]) + 1):
            k = cuda_cfg["num_test"] * (level + 1)
            idx.append(members[torch.randint(members.size, (k,), generator=gen).numpy()])
            lvl.append(np.full(k, level, dtype=np.int64))
    correct = torch.zeros(num_classes * width, device=device)
    trials = torch.zeros(num_classes * width, device=device)
    if idx:
        idx, lvl = np.concatenate(idx), np.concatenate(lvl)
        was_training = model.training
        model.eval()
        for start in range(0, len(idx), batch_size):
            bi, bl = idx[start:start + batch_size], lvl[start:start + batch_size]
            xb = to_device(split.images, bi, device)
            yb = labels_to_device(split.labels, bi, device)
            lv = aug.host_to_device(torch.from_numpy(bl), device)
            x = aug.augment_batch(xb, image_size, augment_cfg, gen, levels=lv,
                                  cuda_cfg=cuda_cfg, force=True)
            with autocast():
                logits = forward(prepare_input(x, channels_last))
            key = yb * width + lv
            correct.index_add_(0, key, (logits.float().argmax(1) == yb).float())
            trials.index_add_(0, key, torch.ones_like(key, dtype=trials.dtype))
        model.train(was_training)
    return (correct.view(num_classes, width).cpu().numpy().astype(np.float64),
            trials.view(num_classes, width).cpu().numpy().astype(np.float64))


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


# --- files of a run ---------------------------------------------------------------------
def check_writable(out: Path) -> None:
    """``--out`` must be (or become) a directory we can write, checked before any data loads."""
    if out.exists() and not out.is_dir():
        raise C.ConfigError(f"--out {out} exists and is not a directory")
    try:
        (out / ".ckpt").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out / ".ckpt", prefix=".probe.", suffix=".tmp"):
            pass
    except OSError as err:
        raise C.ConfigError(f"--out {out} is not writable: {err}") from None


def save_file(path: Path, obj) -> None:
    """``io.torch_save`` with a failure that names the file and the OS error."""
    try:
        io.torch_save(path, obj)
    except Exception as err:  # torch reports a full disk as "unexpected pos ..."
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        try:
            free = f"; {os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize} " \
                   f"bytes free in {path.parent}"
        except OSError:
            free = ""
        raise CheckpointError(f"cannot write checkpoint {path}: {reason}{free}") from err


def load_file(path: Path):
    """The checkpoint at ``path``, None when absent or unreadable (then moved aside)."""
    return io.load_checkpoint(path, {"identity": dict}, _stderr)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def best_path(ckpt_dir: Path, epoch: int) -> Path:
    return ckpt_dir / f"best-e{epoch}.pt"


def prune_best(ckpt_dir: Path, keep: set[int]) -> None:
    for f in ckpt_dir.glob("best-e*.pt"):
        try:
            epoch = int(f.stem[len("best-e"):])
        except ValueError:
            continue
        if epoch not in keep:
            f.unlink(missing_ok=True)


def _summary_matches(out: Path, identity: dict) -> bool:
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    want = json.loads(json.dumps(identity))
    return isinstance(summary, dict) and all(summary.get(k) == v for k, v in want.items())


# --- the run ------------------------------------------------------------------------------
def apply_determinism(device: torch.device, deterministic: bool):
    """Set the kernel choices; return a function that restores the previous ones."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        use_fast_cuda_kernels(device)

    def restore():
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
         torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])

    return restore


def train(dataset: str, experiment: str, loss: str, seed: int, out, hparams: dict,
          on_epoch_end=None, run: dict | None = None) -> dict:
    """Run (or resume, rebuild, or skip if finished) one training run; return its summary.
    ``run`` holds the run settings (``config.resolve_run``; None = the defaults).
    ``on_epoch_end(epoch)`` is called after each epoch's checkpoint (tests kill there)."""
    C.check_seed(seed)
    run = C.effective_run(C.resolve_run(run))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(run["torch_threads"])
        try:  # a device this machine lacks stops before --out is touched
            device = resolve_device(run["device"], "run.device")
        except ValueError as err:
            raise C.ConfigError(str(err)) from None
        check_writable(Path(out))
        with own_run_dir(out):  # held exclusively until the run returns
            return _train(dataset, experiment, loss, seed, Path(out), hparams, run,
                          on_epoch_end, device)
    finally:  # in-process callers (tests) get their thread count back
        torch.set_num_threads(threads)


def _train(dataset, experiment, loss, seed, out: Path, hparams, run, on_epoch_end,
           device: torch.device) -> dict:
    t_start = time.perf_counter()
    ckpt_dir = out / ".ckpt"
    d, e, lcfg = hparams["dataset"], hparams["experiment"], hparams["loss"]
    fingerprint = code_fingerprint(TRAINERS["classify"])
    identity = {"dataset": dataset, "experiment": experiment, "loss": loss, "seed": seed,
                "hparams": hparams, "code_fingerprint": fingerprint}

    outputs = OUTPUTS + ((CUDA_OUTPUT,) if e["cuda"]["enabled"] else ())
    # (1) Finished, every output there: skip, without reading the checkpoint.
    if all((out / f).is_file() for f in outputs) and _summary_matches(out, identity):
        print(f"{out}: already finished, all outputs present, nothing to do", file=sys.stderr)
        return json.loads((out / "summary.json").read_text())
    io.remove_stale_temporaries(out, _stderr)

    state = load_file(ckpt_dir / "last.pt")
    best_weights = None
    if state is not None and state["identity"] != identity:
        old = state["identity"].get("code_fingerprint")
        why = (f"code changed (fingerprint {old} -> {fingerprint})" if old != fingerprint
               else "different configuration")
        print(f"{ckpt_dir / 'last.pt'}: checkpoint of a {why}, starting afresh",
              file=sys.stderr)
        state = None
    if state is not None:
        best = load_file(best_path(ckpt_dir, state["best_epoch"]))
        if best is None or best["identity"] != identity or best["epoch"] != state["best_epoch"]:
            print(f"{ckpt_dir}: the best weights of epoch {state['best_epoch']} are missing or "
                  "do not match the checkpoint, starting afresh", file=sys.stderr)
            state = None
        else:
            best_weights = best["model"]

    restore = apply_determinism(device, run["deterministic"])
    try:
        return _run(dataset, experiment, loss, seed, out, hparams, run, on_epoch_end, device,
                    identity, state, best_weights, t_start)
    finally:
        restore()


def _run(dataset, experiment, loss, seed, out, hparams, run, on_epoch_end, device, identity,
         state, best_weights, t_start) -> dict:
    ckpt_dir = out / ".ckpt"
    d, e, lcfg = hparams["dataset"], hparams["experiment"], hparams["loss"]
    channels_last = device.type == "cuda" and run["channels_last"]

    def autocast():
        return bf16_autocast(device, e["bf16"])

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # shuffling and augmentation

    data = load_dataset(d, num_workers=run["num_workers"], cache_dir=run["cache_dir"])
    train_split, val_split, test_split = (data.splits[s] for s in ("train", "val", "test"))
    num_classes = len(data.classes)
    for name, split in data.splits.items():
        check_labels(split.labels, num_classes, f"{data.manifest_path} ({name})")
    counts = torch.tensor(data.counts["train"], dtype=torch.float32).to(device)

    def loss_fn(logits, targets):
        return supervised_loss(loss, logits, targets, alpha=lcfg["alpha"], gamma=lcfg["gamma"],
                               class_counts=counts, **_LOSS_OPTS)

    model = build_model(e["model"], num_classes)
    model = model.to(device, memory_format=torch.channels_last if channels_last else
                     torch.contiguous_format)
    forward = torch.compile(model) if run["compile"] else model
    n_train, bs = len(train_split.labels), e["batch_size"]
    # Drop the last partial batch (BatchNorm needs > 1 sample); a new order every epoch.
    steps_per_epoch = max(n_train // bs, 1)
    opt = make_optimizer(model.parameters(), e)
    sched = make_scheduler(opt, e, e["epochs"] * steps_per_epoch)

    cuda_cfg = e["cuda"] if e["cuda"]["enabled"] else None
    levels = np.zeros(num_classes, dtype=np.int64)     # CUDA levels (start at 0, as CUDA)
    levels_dev = torch.zeros(num_classes, dtype=torch.long, device=device)
    cuda_log: list[dict] = []
    sampled = np.zeros(num_classes, dtype=np.int64)    # images drawn per class, all epochs
    history: list[dict] = []
    start_epoch, best_acc, best_epoch, bad_epochs, wall_before = 1, -1.0, 0, 0, 0.0
    finished = False
    ckpt_time, ckpt_count = 0.0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], gen)
        history, best_acc, best_epoch = state["history"], state["best_acc"], state["best_epoch"]
        bad_epochs, wall_before, finished = state["bad_epochs"], state["wall_time_s"], state["finished"]
        ckpt_time, ckpt_count = state.get("checkpoint_time_s", 0.0), state.get("checkpoints", 0)
        levels = np.asarray(state.get("cuda_levels", levels), dtype=np.int64)
        levels_dev.copy_(torch.from_numpy(levels))
        cuda_log = state.get("cuda_log", [])
        sampled = np.asarray(state.get("sampled_per_class", sampled), dtype=np.int64)
        start_epoch = state["epoch"] + 1
        prune_best(ckpt_dir, {best_epoch})  # best files of epochs after the checkpoint
        if finished:
            print(f"{out}: finished at epoch {state['epoch']} but an output is missing: "
                  "rebuilding outputs from the final checkpoint (no training)", file=sys.stderr)
        else:
            print(f"resuming {out} after epoch {state['epoch']}", file=sys.stderr)
    else:
        prune_best(ckpt_dir, set())
        print(f"{out}: starting afresh (epoch 1 of {e['epochs']})", file=sys.stderr)
    ckpt_best = best_epoch  # the best file the last written checkpoint refers to

    def save_checkpoint(epoch: int, done: bool) -> None:
        nonlocal ckpt_time, ckpt_count, ckpt_best
        t0 = time.perf_counter()
        ckpt_count += 1
        save_file(ckpt_dir / "last.pt", {
            "identity": identity, "epoch": epoch, "finished": done,
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "rng": _rng_state(gen), "history": history,
            "best_acc": best_acc, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
            "wall_time_s": wall_before + time.perf_counter() - t_start,
            "checkpoint_time_s": ckpt_time, "checkpoints": ckpt_count,
            "cuda_levels": levels.copy(), "cuda_log": cuda_log,
            "sampled_per_class": sampled.copy()})
        ckpt_best = best_epoch
        prune_best(ckpt_dir, {best_epoch})
        ckpt_time += time.perf_counter() - t0

    step = make_train_step(forward, opt, sched, loss_fn, train_split, d["image_size"],
                           e["augmentation"] if e["augment"] else None, gen, device,
                           channels_last, autocast, cuda_cfg=cuda_cfg, levels=levels_dev)
    train_counts = np.asarray(data.counts["train"])
    # Live view: TensorBoard scalars under OUT/tb (a resumed run drops what an interrupted
    # attempt wrote past its checkpoint), and an ETA on every epoch line.
    board = RunLogger(out, enabled=run["tensorboard"], total=e["epochs"], unit="epoch",
                      start=start_epoch - 1, resume_step=start_epoch if state else None)
    t_loop = time.perf_counter()
    for epoch in range(start_epoch, e["epochs"] + 1):
        if finished:
            break
        t0 = time.perf_counter()
        model.train()
        lr = opt.param_groups[0]["lr"]
        perm = epoch_indices(train_split.labels, train_counts, e["sampling"], gen)
        sampled += np.bincount(train_split.labels[perm[:steps_per_epoch * bs]],
                               minlength=num_classes)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for s in range(steps_per_epoch):
            idx = np.sort(perm[s * bs:(s + 1) * bs])  # sorted: sequential cache reads
            loss_value, right = step(idx)
            loss_sum += loss_value * len(idx)
            correct += right
            seen += len(idx)
        train_loss, train_acc = float(loss_sum) / seen, float(correct) / seen  # one sync
        train_time = time.perf_counter() - t0
        if cuda_cfg is not None:  # CUDA: test each class at its levels, step the levels
            correct_l, trials_l = cuda_level_test(
                forward, model, train_split, levels, cuda_cfg, e["augmentation"],
                d["image_size"], 2 * bs, gen, device, autocast, channels_last)
            new_levels, worst = cuda_update(levels, correct_l, trials_l,
                                            cuda_cfg["threshold"], cuda_cfg["max_level"])
            cuda_log += [{"epoch": epoch, "class": c, "name": data.classes[c],
                          "train_count": int(train_counts[c]), "level": int(levels[c]),
                          "accuracy": float(worst[c]), "next_level": int(new_levels[c])}
                         for c in range(num_classes)]
            levels = new_levels
            levels_dev.copy_(torch.from_numpy(levels))
            io.write_csv(out / CUDA_OUTPUT, pd.DataFrame(cuda_log, columns=CUDA_COLUMNS))
        val_loss, val_acc, _ = evaluate(forward, val_split, e, d, device, loss_fn, autocast,
                                        channels_last)
        history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                        "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
                        "epoch_time_s": time.perf_counter() - t0,  # train + val, no checkpoint
                        "images_per_s": seen / train_time})
        if val_acc > best_acc:
            best_acc, best_epoch, bad_epochs = val_acc, epoch, 0
            t1 = time.perf_counter()
            save_file(best_path(ckpt_dir, epoch), {
                "identity": identity, "epoch": epoch,
                "model": {k: v.detach().to("cpu", copy=True)
                          for k, v in model.state_dict().items()}})
            prune_best(ckpt_dir, {epoch, ckpt_best})
            ckpt_time += time.perf_counter() - t1
        else:
            bad_epochs += 1
        patience = e["early_stopping_patience"]
        finished = epoch == e["epochs"] or (patience is not None and bad_epochs >= patience)
        board.scalars(epoch, {**{f"train/{k}": v for k, v in history[-1].items()
                                 if k not in ("epoch", "images_per_s")},
                              "perf/images_per_s": history[-1]["images_per_s"],
                              **({"cuda/mean_level": float(levels.mean())}
                                 if cuda_cfg is not None else {})})
        per_epoch = (time.perf_counter() - t_loop) / (epoch - start_epoch + 1)
        eta = 0.0 if finished else per_epoch * (e["epochs"] - epoch)  # at most; may stop early
        print(f"epoch {epoch}: train_loss {train_loss:.4f} train_acc {train_acc:.4f} "
              f"val_acc {val_acc:.4f} ({history[-1]['epoch_time_s']:.1f}s, "
              f"{history[-1]['images_per_s']:.0f} images/s, ETA {format_duration(eta)})",
              file=sys.stderr, flush=True)
        io.write_csv(out / "history.csv", pd.DataFrame(history, columns=HISTORY_COLUMNS))
        if finished or epoch % run["checkpoint_every"] == 0:
            save_checkpoint(epoch, finished)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    board.close()
    epochs_run = len(history)

    # Test the best-validation weights (from the file written when they improved).
    if best_weights is None or best_epoch != (state or {}).get("best_epoch"):
        best = load_file(best_path(ckpt_dir, best_epoch))
        if best is None:
            raise CheckpointError(f"the best weights {best_path(ckpt_dir, best_epoch)} vanished")
        best_weights = best["model"]
    model.load_state_dict(best_weights)
    _, _, preds = evaluate(forward, test_split, e, d, device, loss_fn, autocast, channels_last)
    table = per_class_table(test_split.labels, preds, data.classes, data.counts["train"])
    summary = {
        **identity,
        **summarize(test_split.labels, preds, table),
        "best_epoch": best_epoch, "best_val_acc": best_acc, "epochs_run": epochs_run,
        "stopped_early": epochs_run < e["epochs"],
        "num_classes": num_classes, "train_size": n_train, "test_size": len(test_split.labels),
        "manifest": str(data.manifest_path), "manifest_hash": data.manifest_hash,
        "run_settings": {**run, "device": str(device),
                         "cache_dir": str(Path(data.cache_paths["train"]).parent)},
        "run_info": run_info(device),
        "checkpoint_time_s": ckpt_time, "checkpoints": ckpt_count,
        "sampling": e["sampling"],
        "sampled_per_class": sampled.tolist(),
        "sampled_per_class_per_epoch": (sampled / max(epochs_run, 1)).tolist(),
        "wall_time_s": wall_before + time.perf_counter() - t_start,
    }
    if cuda_cfg is not None:
        summary["cuda_levels_final"] = levels.tolist()
        io.write_csv(out / CUDA_OUTPUT, pd.DataFrame(cuda_log, columns=CUDA_COLUMNS))
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
    p.add_argument("--run", default=None,
                   help="run settings: inline JSON object or path to a .json file "
                        f"(keys: {', '.join(C.RUN)})")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one hyperparameter, or a run setting as run.KEY=VALUE "
                        "(value parsed as YAML); repeatable")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        try:  # --hparams/--set parse errors are plain ValueErrors
            hp, sets = C.load_hparams(args.hparams), C.parse_set(args.set)
        except ValueError as err:
            raise C.ConfigError(str(err)) from None
        sets, run_sets = C.split_sets(sets)
        run = C.resolve_run(C.load_run(args.run), run_sets)
        hparams = C.resolve(args.dataset, args.experiment, args.loss, hp, sets)
        C.check_seed(args.seed)
        stop_with_launcher(_stderr)
        train(args.dataset, args.experiment, args.loss, args.seed, args.out, hparams, run=run)
    except (C.ConfigError, DataUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunDirBusy as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a checkpoint write (CheckpointError), an unwritable cache_dir
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
