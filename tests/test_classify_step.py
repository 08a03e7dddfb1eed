"""The classifier's hot path (issue 11, items 9-13): float32 logits under bf16 autocast, no
host synchronisation per training step, checkpoint cadence and best weights, memory-mapped
caches, the deterministic switch."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from torch.overrides import TorchFunctionMode

from scopeloss import devices
from scopeloss.classify import config as C
from scopeloss.classify import data as D
from scopeloss.losses import supervised_loss
from scopeloss import lifecycle
from scopeloss.classify import engine
from scopeloss.classify import model as M
from scopeloss.classify import train as T

from classifier_helpers import SMALL, Stop, run_in_process
from scopeloss.config_keys import merge
from scopeloss.params import AugmentationConfig

CONVERSIONS = {"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"}


class SyncCounter(TorchFunctionMode):
    """A CPU stand-in for a CUDA sync counter: every call that waits for the device on CUDA
    (a tensor turned into a Python value or host array, a blocking host->device copy, a
    tensor created from Python data directly on the device) is counted; calls made inside
    scopeloss/losses.py are counted apart. Non-blocking copies are listed with the function
    that made them (only ``augment.host_to_device`` pins the source on CUDA)."""

    def __init__(self):
        super().__init__()
        self.syncs, self.in_losses, self.async_copies = [], [], []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        sync = name in CONVERSIONS
        if name == "to" and args and isinstance(args[0], torch.Tensor):
            target = [a for a in args[1:] if isinstance(a, (torch.device, str))] or \
                [kwargs.get("device")]
            if target[0] is not None:
                if kwargs.get("non_blocking"):
                    self.async_copies.append(sys._getframe(1).f_code.co_name)
                else:
                    sync = True
        if name in ("tensor", "as_tensor") and kwargs.get("device") is not None:
            data = args[0] if args else None
            sync = not (isinstance(data, torch.Tensor)
                        and data.device == torch.device(kwargs["device"]))
        if sync:
            frame, files = sys._getframe(1), []
            while frame is not None and len(files) < 6:
                files.append(frame.f_code.co_filename)
                frame = frame.f_back
            (self.in_losses if any(f.endswith("losses.py") for f in files)
             else self.syncs).append(name)
        return func(*args, **kwargs)


def _step_fixture(tmp_path, loss="scope", augment=True):
    images = np.random.default_rng(0).integers(0, 256, (64, 36, 36, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    split = D.Split(np.load(tmp_path / "x.npy", mmap_mode="r"),
                    np.arange(64, dtype=np.int64) % 10)
    model = M.build_model("resnet18", 10)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    counts = torch.ones(10)

    def loss_fn(logits, y):
        return supervised_loss(loss, logits, y, class_counts=counts, check_range=False)
    device = torch.device("cpu")
    cfg = AugmentationConfig.from_mapping({**C.AUGMENTATION, "crop_padding": 2}, "augmentation")
    step = engine.make_train_step(
        model, loss_fn, split, optimizer=opt, scheduler=sched,
        augmenting=engine.Augmenting(cfg if augment else None, 32, torch.Generator().manual_seed(0)),
        compute=engine.Compute(device, False, lambda: devices.bf16_autocast(device, False)))
    return step


@pytest.mark.parametrize("loss", ["scope", "balanced_softmax"])
def test_training_step_makes_no_host_sync(loss, tmp_path):
    step = _step_fixture(tmp_path, loss)
    step(np.arange(16))  # warm-up: the normalisation constants are made once per device
    with SyncCounter() as counter:
        for s in range(3):
            step(np.arange(16 * s, 16 * s + 16))
    assert counter.syncs == [], counter.syncs
    # images, labels, augmentation draws: one pinned non-blocking copy each per step
    assert counter.async_copies == ["host_to_device"] * 9
    # Nor does the loss library: labels and counts were validated where the data entered
    # (check_range=False skips int(min), int(max) and bool(any(counts <= 0)) per call).
    assert len(counter.in_losses) == 0, counter.in_losses


def test_labels_are_validated_once_where_data_enters():
    T.check_labels(np.array([0, 3, 9]), 10, "x")
    with pytest.raises(D.DataUnavailable, match=r"labels must lie in \[0, 9\], got min 0, max 10"):
        T.check_labels(np.array([0, 10]), 10, "manifest.json (train)")


def test_logits_and_predictions_are_float32_under_bf16_autocast(monkeypatch):
    monkeypatch.setattr(devices, "BF16_AUTOCAST_DEVICES", {"cuda", "cpu"})
    torch.manual_seed(0)
    model = M.build_model("resnet18", 257).eval()
    x = torch.randn(8, 3, 32, 32)
    cpu = torch.device("cpu")
    with torch.no_grad(), devices.bf16_autocast(cpu, True):
        logits = model(x)
        features = torch.flatten(model.avgpool(model.layer4(model.layer3(model.layer2(
            model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))))), 1)
    assert logits.dtype == torch.float32
    want = features.float() @ model.fc.weight.T + model.fc.bias
    torch.testing.assert_close(logits, want)
    assert set(model.state_dict()) == set(
        torchvision.models.get_model("resnet18", num_classes=257).state_dict())

    # evaluate() predicts from those float32 logits.
    split = D.Split(np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
                    np.zeros(20, dtype=np.int64))

    def loss_fn(lg, y):
        return supervised_loss("ce", lg, y)
    seen = []
    model.fc.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    _, _, preds = engine.evaluate(
        model, split, batch_size=16, image_size=32, loss_fn=loss_fn,
        compute=engine.Compute(cpu, False, lambda: devices.bf16_autocast(cpu, True)))
    assert seen and set(seen) == {torch.float32} and preds.dtype == np.int64


def test_checkpoint_every_k_epochs_and_best_weights_on_improvement(data_root, tmp_path,
                                                                   monkeypatch):
    sets = ("experiment.epochs=4", *SMALL[1:], "run.checkpoint_every=3")
    writes = []
    real = lifecycle.save_checkpoint

    def recording(path, obj):
        writes.append(path.name)
        return real(path, obj)
    monkeypatch.setattr(lifecycle, "save_checkpoint", recording)
    full = tmp_path / "full"
    summary = run_in_process(data_root, full, *sets, experiment="augmented", loss="scope")
    history = pd.read_csv(full / "history.csv")
    acc = history["val_acc"].tolist()
    improved = [e for i, e in enumerate(history["epoch"]) if acc[i] > max(acc[:i], default=-1)]
    assert [w for w in writes if w == "last.pt"] == ["last.pt"] * 2  # epochs 3 and 4 (final)
    assert sorted(w for w in writes if w.startswith("best")) == sorted(
        f"best-e{e}.pt" for e in improved)
    assert summary["checkpoints"] == 2 and summary["checkpoint_time_s"] >= 0
    assert [p.name for p in (full / ".ckpt").glob("best-e*.pt")] == [f"best-e{improved[-1]}.pt"]

    # Stopped after epoch 2 (no checkpoint yet) and after epoch 3, then resumed: exact.
    part = tmp_path / "part"
    with pytest.raises(Stop):
        run_in_process(data_root, part, *sets, experiment="augmented", loss="scope",
                        stop_after=2)
    assert not (part / ".ckpt" / "last.pt").exists()
    with pytest.raises(Stop):
        run_in_process(data_root, part, *sets, experiment="augmented", loss="scope",
                        stop_after=3)
    resumed = run_in_process(data_root, part, *sets, experiment="augmented", loss="scope")
    a, b = pd.read_csv(part / "history.csv"), history
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=1e-5)
    assert resumed["top1"] == summary["top1"] and resumed["best_epoch"] == summary["best_epoch"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_caches_are_memory_mapped(data_root):
    cfg = merge(C.DATASETS["digits_lt"], {"root": str(data_root)})
    ds = D.load_dataset(cfg)
    for split in ds.splits.values():
        assert isinstance(split.images, np.memmap) and not split.images.flags.writeable


def test_deterministic_switch(data_root, tmp_path, monkeypatch):
    seen = []
    real = T.ClassifierRun.train

    def spy(*a, **k):
        seen.append((torch.are_deterministic_algorithms_enabled(),
                     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark))
        return real(*a, **k)
    monkeypatch.setattr(T.ClassifierRun, "train", spy)
    before = torch.are_deterministic_algorithms_enabled()
    s = run_in_process(data_root, tmp_path / "r", "experiment.epochs=1", *SMALL[1:],
                        "run.deterministic=true")
    assert seen == [(True, True, False)] and s["run_settings"]["deterministic"] is True
    assert torch.are_deterministic_algorithms_enabled() == before  # restored


def test_epoch_time_excludes_checkpoints(data_root, tmp_path, monkeypatch):
    import time

    real = lifecycle.save_checkpoint

    def slow(path, obj):  # every checkpoint takes 3 s more; an epoch here takes < 1 s
        if path.name == "last.pt":
            time.sleep(3.0)
        return real(path, obj)
    monkeypatch.setattr(lifecycle, "save_checkpoint", slow)
    s = run_in_process(data_root, tmp_path / "r", *SMALL)
    h = pd.read_csv(tmp_path / "r" / "history.csv")
    assert s["checkpoint_time_s"] >= 3.0 * s["checkpoints"]
    # disjoint from the checkpoints' time: both fit in the run's wall time side by side (a
    # bound that holds on a loaded machine, where an epoch alone may take over 3 s)
    assert h["epoch_time_s"].sum() + s["checkpoint_time_s"] <= s["wall_time_s"] + 0.5, (
        h["epoch_time_s"].tolist(), s["checkpoint_time_s"], s["wall_time_s"])
    # images/s = training images of the epoch / its training time (no validation, no checkpoint)
    n_train = s["train_size"] // 32 * 32
    assert (h["images_per_s"] > n_train / h["epoch_time_s"]).all()
