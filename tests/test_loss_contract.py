"""The loss contract of round 5 (docs/CONTRACT.md, "Your own loss"): a loss declares the
context it needs (counts, progress, epoch/update, state), may report metrics, may adjust
predictions post hoc; a stateful loss's state survives a kill. Exercised through both
trainers with a user's module, as a researcher would write it."""

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from scopeloss import lifecycle, registry
from scopeloss.classify import train as T
from scopeloss.config_keys import ConfigError
from scopeloss.lifecycle import LossFailure
from scopeloss.losses import (BoundLoss, register_ppo_loss,
                              register_supervised_loss, supervised_loss)
from scopeloss.rl import ppo
from scopeloss.rl.config import resolve
from classifier_helpers import classifier_args
from user_losses import MODULE


class Killed(Exception):
    pass


@pytest.fixture
def user_module(tmp_path):
    path = tmp_path / "my_losses.py"
    path.write_text(MODULE)
    with registry.restored():
        registry.load_modules([str(path)])
        yield path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_bad_registrations_are_one_line_naming_the_loss_and_the_fault():
    with registry.restored():
        cases = [
            (lambda: register_ppo_loss("a", needs=("class_counts",)),
             "loss 'a': needs 'class_counts' is not something a PPO policy loss is handed; "
             "allowed: action_counts, progress, update, state"),
            (lambda: register_supervised_loss("b", needs="progress"),
             "loss 'b': needs must be a tuple of names, got 'progress'"),
            (lambda: register_supervised_loss("c", needs=("progress",))(
                lambda logits, targets: logits.sum()),
             "cannot be called as a supervised loss is, with (logits, targets, *, progress)"),
            (lambda: register_supervised_loss("d", eval_logits=lambda logits, *, tau: logits)(
                lambda logits, targets: logits.sum()),
             "cannot be called as its eval_logits is, with (logits)"),
            (lambda: registry.register("ppo", "e", {}, eval_logits=lambda logits: logits),
             "loss 'e': eval_logits must be a function, and only a supervised loss has one"),
            (lambda: register_supervised_loss("f", eval_logits="adjust"),
             "loss 'f': eval_logits must be a function"),
        ]
        for register, message in cases:
            with pytest.raises(ConfigError) as info:
                register()
            assert message in str(info.value) and "\n" not in str(info.value)

        @register_supervised_loss("old_style", needs_class_counts=True)
        def old_style(logits, targets, *, class_counts):
            return logits.sum() * 0

        assert registry.get("supervised", "old_style").needs == ("class_counts",)


def test_metrics_are_checked_and_averaged_on_the_device(user_module):
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 0, 1])
    counts = torch.tensor([30.0, 20.0, 10.0])
    bound = BoundLoss("supervised", "deferred_weights")
    bound.set(class_counts=counts, progress=0.25)
    bound.supervised(logits, targets)
    bound.set(progress=0.75)
    bound.supervised(logits, targets)
    bound.supervised(logits, targets, record=False)  # evaluation: not recorded
    means = bound.take_metrics()
    assert {k: v.item() for k, v in means.items()} == {"progress": 0.5, "reweighted": 0.5}
    assert bound.take_metrics() == {}
    # The public dispatch hands only what the loss declared: a missing one is named.
    with pytest.raises(ValueError, match="'deferred_weights' needs progress, which its caller"):
        supervised_loss("deferred_weights", logits, targets, class_counts=counts)
    with registry.restored():
        @register_supervised_loss("vector_metric")
        def vector_metric(logits, targets):
            return logits.sum(), {"per_class": logits.sum(0)}

        with pytest.raises(LossFailure, match="metric 'per_class' must be a scalar tensor"):
            supervised_loss("vector_metric", logits, targets)


def test_evaluation_leaves_a_stateful_loss_state_alone(user_module):
    logits, targets = torch.randn(8, 4), torch.arange(8) % 4
    bound = BoundLoss("supervised", "running_ce")
    bound.set(epoch=0)
    bound.supervised(logits, targets)
    before = {k: v.clone() for k, v in bound.state.items()}
    bound.supervised(logits * 3, targets, record=False)
    assert all(torch.equal(before[k], bound.state[k]) for k in before)
    bound.supervised(logits * 3, targets)
    assert bound.state["steps"].item() == 2
    state = {}  # the public dispatch mutates the caller's dict
    supervised_loss("running_ce", logits, targets, epoch=0, state=state)
    assert state["steps"].item() == 1


def test_a_classifier_run_logs_the_losses_metrics_and_predicts_post_hoc(user_module, data_root,
                                                                        tmp_path):
    sets = ("experiment.epochs=4", "dataset.max_per_class=30", "experiment.batch_size=32",
            "experiment.early_stopping_patience=null")
    out = tmp_path / "deferred"
    assert T.main([*classifier_args(data_root, out, *sets, loss="deferred_weights"),
                   "--loss-module", str(user_module)]) == 0
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == T.HISTORY_COLUMNS + ["loss_progress", "loss_reweighted"]
    assert history["loss_progress"].tolist() == [0.0, 0.25, 0.5, 0.75]  # when each epoch began
    assert history["loss_reweighted"].tolist() == [0.0, 0.0, 1.0, 1.0]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    board = EventAccumulator(str(out / "tb"))
    board.Reload()
    assert {"loss/progress", "loss/reweighted"} <= set(board.Tags()["scalars"])

    out = tmp_path / "posthoc"
    assert T.main([*classifier_args(data_root, out, "experiment.epochs=3",
                                    "dataset.max_per_class=30", "experiment.batch_size=32",
                                    "experiment.early_stopping_patience=null",
                                    loss="posthoc_first"),
                   "--loss-module", str(user_module)]) == 0
    per_class = pd.read_csv(out / "per_class.csv")
    summary = json.loads((out / "summary.json").read_text())
    # the adjustment favours class 0 by 1000: every test prediction is class 0
    assert summary["never_predicted"] == len(per_class) - 1
    assert per_class.loc[0, "recall"] == 1.0
    # validation predicts with it too: class 0's share of the validation split, every epoch
    history = pd.read_csv(out / "history.csv")
    assert history["val_acc"].nunique() == 1 and summary["best_epoch"] == 1


def test_a_killed_stateful_classifier_resumes_its_loss_state_exactly(user_module, data_root,
                                                                     tmp_path):
    sets = ("experiment.epochs=4", "dataset.max_per_class=30", "experiment.batch_size=32",
            "experiment.early_stopping_patience=null", "run.checkpoint_every=1")
    killed, full = tmp_path / "killed", tmp_path / "full"
    args = [*classifier_args(data_root, killed, *sets, loss="running_ce"),
            "--loss-module", str(user_module)]
    script = textwrap.dedent(f"""
        import os, signal
        from scopeloss import registry
        from scopeloss.classify import train as T, config as C
        registry.load_modules([{str(user_module)!r}])
        a = T.build_parser().parse_args({args!r})
        sets, run = C.split_run(C.parse_set(a.set))
        h = C.resolve(a.dataset, a.experiment, a.loss, None, sets)
        def stop(epoch):
            if epoch == 2: os.kill(os.getpid(), signal.SIGKILL)
        T.train(h, seed=a.seed, out=a.out, on_epoch_end=stop,
                run=C.resolve_run(None, run))
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    saved = torch.load(killed / ".ckpt" / "last.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["loss_state"]["steps"].item() > 0
    assert T.main(args) == 0
    assert T.main([*classifier_args(data_root, full, *sets, loss="running_ce"),
                   "--loss-module", str(user_module)]) == 0
    a, b = pd.read_csv(killed / "history.csv"), pd.read_csv(full / "history.csv")
    cols = ["epoch", "train_loss", "val_acc", "loss_p_mean", "loss_steps", "loss_epoch"]
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=1e-6)
    assert b["loss_epoch"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert b["loss_steps"].is_monotonic_increasing  # the state was carried, not restarted


def test_a_ppo_run_hands_its_loss_the_context_and_resumes_its_state(user_module, tmp_path,
                                                                     monkeypatch):
    small = {"num_envs": 4, "num_steps": 32, "update_epochs": 2, "num_minibatches": 2,
             "total_steps": 4 * 32 * 6}
    settings = {"torch_threads": 1, "device": "cpu", "checkpoint_every": 2}

    def run(out):
        cell = resolve("CartPole-v1", "stateful_pg", {"ppo": small})
        return ppo.train(cell, seed=3, out=out, run=settings, log=lambda line: None)

    run(tmp_path / "whole")
    real, seen = lifecycle.save_checkpoint, []

    def save_then_die(path, obj):  # a kill right after the second checkpoint (update 4)
        real(path, obj)
        seen.append(obj["update"])
        if len(seen) == 2:
            raise Killed

    monkeypatch.setattr(lifecycle, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run(tmp_path / "killed")
    monkeypatch.undo()
    run(tmp_path / "killed")
    whole, resumed = (pd.read_csv(tmp_path / d / "updates.csv") for d in ("whole", "killed"))
    assert whole["loss_update"].tolist() == [1, 2, 3, 4, 5, 6]
    assert whole["loss_progress"].tolist() == pytest.approx([k / 6 for k in range(6)])
    assert (whole["loss_rollout"] == 128).all()  # the rollout's action counts
    # the state counts every call (2 epochs x 2 minibatches per update), across the resume
    assert resumed["loss_calls"].tolist() == whole["loss_calls"].tolist()
    assert whole["loss_calls"].tolist() == [4.0 * k - 0.5 for k in range(1, 7)]  # the last epoch's two
