"""Classification training throughput, and epoch time with and without the decode-once cache.

Throughput (default): training images/s of the trainer's own step
(``scopeloss.classify.train.make_train_step``: gather of a sorted random batch from a
memory-mapped uint8 cache at ``--resize-size`` -> pinned non-blocking copy -> augmentation
on the device -> bf16 autocast and channels_last on CUDA -> loss -> SGD step -> scheduler),
at the trainer's batch size (64), on a random cache of ``--cache-images`` images:

    python benchmarks/classify_throughput.py                       # ResNet101, 256 -> 224 px
    python benchmarks/classify_throughput.py --model resnet18 --image-size 64 --batch-size 16

Cache comparison (``--compare-cache``): builds a synthetic tree in Caltech-256's layout
(JPEGs of Caltech-like sizes), then times one training epoch reading (a) the files, decoded
and resized per image in DataLoader worker processes, and (b) the uint8 cache; also the
data-only time of each and the one-off cache build:

    python benchmarks/classify_throughput.py --compare-cache --model resnet18 --image-size 112
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from scopeloss.classify import augment as aug
from scopeloss.classify import data as D
from scopeloss.classify.engine import Augmenting, Compute, make_train_step
from scopeloss.classify.model import build_model, make_optimizer
from scopeloss.schedules import make_schedule
from scopeloss.classify.config import AUGMENTATION, DATASETS, EXPERIMENTS
from scopeloss.config_keys import merge
from scopeloss.params import AugmentationConfig, ExperimentConfig
from scopeloss.devices import (bf16_autocast, keep_freed_memory, resolve_device,
                               use_fast_cuda_kernels)
from scopeloss.losses import supervised_loss


AUGMENT = AugmentationConfig.from_mapping(AUGMENTATION, "augmentation")  # Table 5


def setup(args):
    device = resolve_device(args.device, "--device")
    cuda = device.type == "cuda"
    use_fast_cuda_kernels(device)  # as the trainer does
    if args.threads:
        torch.set_num_threads(args.threads)
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = torchvision.models.get_model(args.model, weights=None, num_classes=args.classes)
    model = model.to(device, memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    autocast = bf16_autocast(device, True)

    def step(x_uint8: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x_uint8 (B, S, S, 3) on the host."""
        if cuda:
            x_uint8, y = x_uint8.pin_memory().to(device, non_blocking=True), y.to(device)
        x = x_uint8.permute(0, 3, 1, 2)
        x = aug.augment_batch(x, args.image_size, AUGMENT, gen) if args.augment else \
            aug.eval_batch(x, args.image_size)
        x = aug.normalize(x).contiguous(memory_format=fmt)
        with autocast:
            logits = model(x)
        loss = supervised_loss("scope", logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if cuda:
            torch.cuda.synchronize()

    return device, step, sync


def throughput(args) -> None:
    """Time ``make_train_step``, the function the trainer's epoch loop calls."""
    device = resolve_device(args.device, "--device")
    cuda = device.type == "cuda"
    use_fast_cuda_kernels(device)  # as the trainer does (run.deterministic false)
    if device.type == "cpu" and args.keep_freed_memory:
        assert keep_freed_memory()  # as the trainer does (run.keep_freed_memory)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.resize_size or round(args.image_size * 256 / 224)
    n = max(args.cache_images, args.batch_size)
    tmp = Path(tempfile.mkdtemp(prefix="classify-bench-"))
    out = np.lib.format.open_memmap(tmp / "cache.npy", mode="w+", dtype=np.uint8,
                                    shape=(n, size, size, 3))
    rng = np.random.default_rng(0)
    for start in range(0, n, 256):
        stop = min(start + 256, n)
        out[start:stop] = rng.integers(0, 256, (stop - start, size, size, 3), dtype=np.uint8)
    out.flush()
    del out
    split = D.Split(np.load(tmp / "cache.npy", mmap_mode="r"),
                    rng.integers(0, args.classes, n).astype(np.int64))
    channels_last = cuda
    model = build_model(args.model, args.classes)
    model = model.to(device, memory_format=torch.channels_last if channels_last else
                     torch.contiguous_format).train()
    e = ExperimentConfig.from_mapping(EXPERIMENTS["augmented"])  # SGD 1e-2, cosine
    opt = make_optimizer(model.parameters(), e)
    sched = make_schedule(opt, e.schedule, 10 ** 6)
    counts = torch.full((args.classes,), 10.0).to(device)

    def loss_fn(logits, y):
        return supervised_loss("scope", logits, y, class_counts=counts, check_range=False)

    forward = torch.compile(model) if args.compile else model  # as run.compile does
    augmenting = Augmenting(AUGMENT if args.augment else None, args.image_size,
                            torch.Generator().manual_seed(0))
    step = make_train_step(forward, loss_fn, split, optimizer=opt, scheduler=sched,
                           augmenting=augmenting,
                           compute=Compute(device, channels_last, lambda: bf16_autocast(device, True)))
    perm = rng.permutation(n)

    def batch(i):
        k = (i * args.batch_size) % (n - args.batch_size + 1)
        return np.sort(perm[k:k + args.batch_size])

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for i in range(args.warmup):
        step(batch(i))
    sync()
    t0 = time.perf_counter()
    for i in range(args.iters):
        loss, _ = step(batch(i))
    float(loss)
    sync()
    dt = time.perf_counter() - t0
    name = torch.cuda.get_device_name(device) if cuda else \
        f"cpu, {torch.get_num_threads()} threads"
    print(f"{args.model} {size}->{args.image_size}px batch {args.batch_size} on {device} "
          f"({name}), augment={args.augment}, trainer step: "
          f"{args.iters * args.batch_size / dt:.1f} train images/s "
          f"({dt / args.iters * 1000:.0f} ms/step over {args.iters} steps)")
    (tmp / "cache.npy").unlink()
    tmp.rmdir()


class FileImages(torch.utils.data.Dataset):
    """The no-cache baseline: decode and resize every image on every epoch."""

    def __init__(self, base: Path, items, size: int):
        self.base, self.items, self.size = base, items, size

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        rel, label = self.items[i]
        return torch.from_numpy(D.decode_image(self.base / rel, self.size)), label


def make_tree(folder: Path, classes: int, per_class: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    from PIL import Image

    for c in range(classes):
        cdir = folder / f"{c + 1:03d}.class{c}"
        cdir.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = rng.integers(200, 500, size=2)  # Caltech-256 images are ~300 x 400
            # Smooth random colour fields compress like photos (pure noise would not).
            small = rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
            img.save(cdir / f"{c + 1:03d}_{i + 1:04d}.jpg", quality=90)


def compare_cache(args) -> None:
    _, step, sync = setup(args)
    resize = args.resize_size or round(args.image_size * 256 / 224)
    root = Path(args.root or tempfile.mkdtemp(prefix="classify-bench-"))
    folder = root / "caltech256" / D.CALTECH_FOLDER
    if not folder.is_dir():
        t0 = time.perf_counter()
        make_tree(folder, args.tree_classes, args.tree_per_class)
        print(f"synthetic tree: {args.tree_classes * args.tree_per_class} JPEGs in "
              f"{time.perf_counter() - t0:.1f}s at {folder}")
    dcfg = merge(DATASETS["caltech256"], {"root": str(root), "resize_size": resize,
                                           "image_size": args.image_size})
    manifest, _ = D.get_manifest(dcfg)
    items = manifest["items"]["train"]
    bs, n = args.batch_size, len(items)
    print(f"{n} train images, resize {resize} -> {args.image_size}px, batch {bs}, "
          f"{args.model}, {args.workers} decode workers")

    def epoch_files(train_step: bool) -> float:
        loader = torch.utils.data.DataLoader(
            FileImages(folder, items, resize), batch_size=bs, shuffle=True, drop_last=True,
            num_workers=args.workers, persistent_workers=False)
        t0 = time.perf_counter()
        for x, y in loader:
            if train_step:
                step(x, y)
        sync()
        return time.perf_counter() - t0

    def epoch_cache(images: np.ndarray, labels: np.ndarray, train_step: bool) -> float:
        t0 = time.perf_counter()
        perm = np.random.default_rng(0).permutation(len(labels))
        for s in range(len(labels) // bs):
            idx = np.sort(perm[s * bs:(s + 1) * bs])
            x = torch.from_numpy(np.ascontiguousarray(images[idx]))
            if train_step:
                step(x, torch.from_numpy(labels[idx]))
        sync()
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    path = D.build_cache(dcfg, manifest, "train", num_workers=args.workers)
    build = time.perf_counter() - t0
    images = np.load(path, mmap_mode="r")  # as the trainer reads it
    labels = np.array([lab for _, lab in items], dtype=np.int64)
    step(torch.from_numpy(images[:bs]), torch.from_numpy(labels[:bs]))  # warm-up
    rows = [
        ("data only, files (decode per epoch)", epoch_files(False)),
        ("data only, cache", epoch_cache(images, labels, False)),
    ]
    if not args.data_only:
        rows += [("epoch, files (decode per epoch)", epoch_files(True)),
                 ("epoch, cache", epoch_cache(images, labels, True))]
    print(f"one-off cache build: {build:.2f}s ({path.stat().st_size / 2**20:.0f} MiB)")
    for name, secs in rows:
        print(f"{name:40s} {secs:8.2f}s  ({n / secs:8.1f} images/s)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet101")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--resize-size", type=int, default=None,
                   help="cached size (default: 256/224 x the image size, as Caltech's 256 -> 224)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default 64 (the trainer's) on CUDA, 4 on CPU")
    p.add_argument("--cache-images", type=int, default=2048,
                   help="images in the random memory-mapped cache the batches are gathered from")
    p.add_argument("--iters", type=int, default=None, help="default 50 on CUDA, 3 on CPU")
    p.add_argument("--warmup", type=int, default=None, help="default 10 on CUDA, 1 on CPU")
    p.add_argument("--classes", type=int, default=257)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (run.compile)")
    p.add_argument("--no-keep-freed-memory", dest="keep_freed_memory", action="store_false",
                   help="leave glibc's malloc alone on CPU (run.keep_freed_memory: false)")
    p.add_argument("--compare-cache", action="store_true",
                   help="epoch time with and without the decode-once cache")
    p.add_argument("--data-only", action="store_true",
                   help="with --compare-cache: time the data path without training steps")
    p.add_argument("--root", default=None, help="where the synthetic tree goes (default: tmp)")
    p.add_argument("--tree-classes", type=int, default=8)
    p.add_argument("--tree-per-class", type=int, default=60)
    p.add_argument("--workers", type=int, default=2, help="decode worker processes")
    args = p.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.batch_size = args.batch_size or (64 if cuda else 4)
    args.iters = args.iters or (50 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    if args.compare_cache:
        compare_cache(args)
    else:
        throughput(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
