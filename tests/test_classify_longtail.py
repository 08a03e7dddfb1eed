"""Long-tail baselines beyond the paper (issue 15): class-balanced and square-root
re-sampling, and the CUDA augmentation curriculum (Ahn, Ko, Yun, ICLR 2023)."""

import contextlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from scopeloss.classify import config as C
from scopeloss.classify import curriculum as CU
from scopeloss.classify import sampling as S
from scopeloss.classify import train as T
from scopeloss.classify.engine import Augmenting, Compute
from scopeloss.params import AugmentationConfig, CurriculumConfig

COUNTS = np.array([1000, 400, 160, 64, 26, 10])  # a long tail, ratio 100
LABELS = np.repeat(np.arange(len(COUNTS)), COUNTS)


def _draw_counts(sampling, seed=0):
    gen = torch.Generator().manual_seed(seed)
    idx = S.epoch_indices(LABELS, COUNTS, sampling, gen)
    assert len(idx) == len(LABELS)  # an epoch is as many draws as the training set
    return np.bincount(LABELS[idx], minlength=len(COUNTS))


def _within_noise(drawn, p, n, sigmas=4.0):
    """Each class's count within `sigmas` binomial standard deviations of n p_c."""
    expected, sd = n * p, np.sqrt(n * p * (1 - p))
    return np.abs(drawn - expected) <= sigmas * sd


def test_natural_sampling_is_a_permutation_as_before():
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    idx = S.epoch_indices(LABELS, COUNTS, "natural", gen_a)
    assert np.array_equal(idx, torch.randperm(len(LABELS), generator=gen_b).numpy())
    assert np.array_equal(np.bincount(LABELS[idx]), COUNTS)


def test_class_balanced_draws_are_uniform_within_noise():
    n, p = len(LABELS), np.full(len(COUNTS), 1 / len(COUNTS))
    for seed in range(3):
        drawn = _draw_counts("class_balanced", seed)
        assert _within_noise(drawn, p, n).all(), drawn
    # Far from the natural counts: the tail class (10 images) is drawn ~ n/6 = 277 times.
    assert drawn[-1] > 200 and drawn[0] < 400
    # A re-sampler that ignores the tail would fail this check.
    assert not _within_noise(COUNTS, p, n).all()


def test_sqrt_draws_are_proportional_to_the_root_of_the_class_size():
    n = len(LABELS)
    p = np.sqrt(COUNTS) / np.sqrt(COUNTS).sum()
    np.testing.assert_allclose(S.class_probabilities(COUNTS, "sqrt"), p)
    for seed in range(3):
        drawn = _draw_counts("sqrt", seed)
        assert _within_noise(drawn, p, n).all(), (drawn, n * p)
    assert not _within_noise(_draw_counts("class_balanced"), p, n).all()


def test_resampling_resumes_the_same_draws_from_the_generator_state():
    gen = torch.Generator().manual_seed(11)
    S.epoch_indices(LABELS, COUNTS, "class_balanced", gen)      # epoch 1
    saved = gen.get_state()                                      # the checkpoint's state
    rest = [S.epoch_indices(LABELS, COUNTS, "class_balanced", gen) for _ in range(2)]
    resumed = torch.Generator()
    resumed.set_state(saved)
    again = [S.epoch_indices(LABELS, COUNTS, "class_balanced", resumed) for _ in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(rest, again))
    assert not np.array_equal(rest[0], rest[1])                 # new draws every epoch


def test_cuda_step_rule_by_hand():
    # (classes, max_level + 1) correct / trials; the class's levels 0..L are tested.
    levels = np.array([2, 1, 0, 3, 1])
    trials = np.zeros((5, 4))
    correct = np.zeros((5, 4))
    trials[0, :3], correct[0, :3] = [10, 20, 30], [10, 20, 30]   # fits every level -> up
    trials[1, :2], correct[1, :2] = [10, 20], [10, 10]           # 0.5 at level 1 -> down
    trials[2, :1], correct[2, :1] = [10], [2]                    # at 0, not fitted -> stays 0
    trials[3, :4], correct[3, :4] = [10, 20, 30, 40], [9, 19, 29, 39]  # at max, fits -> max
    trials[4, :2], correct[4, :2] = [10, 20], [10, 12]           # exactly 0.6: not above -> down
    new, worst = CU.step_levels(levels, correct, trials, threshold=0.6, max_level=3)
    assert new.tolist() == [3, 0, 0, 3, 0]
    assert worst.tolist() == pytest.approx([1.0, 0.5, 0.2, 0.9, 0.6])


class _AlwaysClassZero(torch.nn.Module):
    """A 'model' that fits class 0 and never class 1, whatever the augmentation."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 2)
        logits[:, 0] = 1.0
        return logits


class _Split:
    def __init__(self, labels):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.images = np.random.default_rng(0).integers(0, 255, (len(labels), 12, 12, 3),
                                                         dtype=np.uint8)


def test_cuda_levels_go_up_for_a_fitted_class_and_down_for_a_missed_one():
    split, model = _Split([0] * 7 + [1] * 3), _AlwaysClassZero()
    cfg = CurriculumConfig.from_mapping({**C.CUDA, "enabled": True, "num_test": 4, "max_level": 5},
                                        "cuda")
    test = {"augmenting": Augmenting(AugmentationConfig.from_mapping(C.AUGMENTATION, "augmentation"),
                                     10, torch.Generator().manual_seed(0)),
            "batch_size": 16,
            "compute": Compute(torch.device("cpu"), False, contextlib.nullcontext)}
    levels = np.array([1, 2])
    correct, trials = CU.level_test(model, model, split, levels, cfg, **test)
    # num_test x (l + 1) images per tested level, none beyond the class's level
    assert trials[0].tolist() == [4, 8, 0, 0, 0, 0] and trials[1].tolist() == [4, 8, 12, 0, 0, 0]
    assert (correct[0, :2] == trials[0, :2]).all() and correct[1].sum() == 0
    new, _ = CU.step_levels(levels, correct, trials, cfg.threshold, cfg.max_level)
    assert new.tolist() == [2, 1]
    # Repeated: class 0 climbs to the cap, class 1 falls to 0 and stays.
    for _ in range(6):
        correct, trials = CU.level_test(model, model, split, new, cfg, **test)
        new, _ = CU.step_levels(new, correct, trials, cfg.threshold, cfg.max_level)
    assert new.tolist() == [5, 0]


def test_cuda_needs_augmentation_and_checks_its_keys():
    with pytest.raises(C.ConfigError, match="experiment.cuda.enabled needs experiment.augment"):
        C.resolve("digits_lt", "plain", "ce", {"experiment": {"cuda": {"enabled": True}}})
    with pytest.raises(C.ConfigError, match="experiment.cuda.threshold must be a finite number in"):
        C.resolve("digits_lt", "augmented_cuda", "ce", {"experiment": {"cuda": {"threshold": 2}}})
    with pytest.raises(C.ConfigError, match="experiment.sampling must be one of natural, class_balanced, sqrt, got 'oversample'"):
        C.resolve("digits_lt", "plain", "ce", {"experiment": {"sampling": "oversample"}})
    h = C.resolve("digits_lt", "plain_balanced", "ce").experiment
    assert h.sampling == "class_balanced" and h.optimizer == "adam"
    assert C.resolve("digits_lt", "augmented_cuda", "ce").experiment.cuda.enabled


# --------------------------------------------------------------------- end to end, digits_lt
@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def _cell(root, experiment, dataset=None, **exp):
    return C.resolve("digits_lt", experiment, "ce",
                     {"dataset": {"root": str(root), **(dataset or {})},
                      "experiment": {"model": "resnet18", **exp}})


RUN = {"torch_threads": 1, "num_workers": 0, "tensorboard": False}


def test_killed_run_resumes_the_same_draws_and_levels(data_root, tmp_path):
    """CUDA with square-root sampling, stopped after epoch 2's checkpoint and resumed:
    the same history, draws per class and CUDA levels as an uninterrupted run."""
    cell = _cell(data_root, "augmented_cuda", {"max_per_class": 60}, epochs=4, batch_size=32,
                 sampling="sqrt", augmentation={"crop_padding": 2})

    class Stop(Exception):
        pass

    def stop(epoch):
        if epoch == 2:
            raise Stop

    killed, full = tmp_path / "killed", tmp_path / "full"
    with pytest.raises(Stop):
        T.train(cell, seed=1, out=killed, on_epoch_end=stop, run=RUN)
    assert not (killed / "summary.json").exists()
    assert len(pd.read_csv(killed / CU.OUTPUT)) == 2 * 10
    a = T.train(cell, seed=1, out=killed, run=RUN)
    b = T.train(cell, seed=1, out=full, run=RUN)
    assert a["sampled_per_class"] == b["sampled_per_class"]
    assert a["cuda_levels_final"] == b["cuda_levels_final"] and a["top1"] == b["top1"]
    assert a["sampling"] == "sqrt" and sum(a["sampled_per_class"]) == 4 * (a["train_size"] // 32) * 32
    la, lb = (pd.read_csv(d / CU.OUTPUT) for d in (killed, full))
    pd.testing.assert_frame_equal(la, lb)
    assert list(la.columns) == CU.COLUMNS and la["epoch"].tolist() == sorted(la["epoch"])
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    pd.testing.assert_frame_equal(pd.read_csv(killed / "history.csv")[cols],
                                  pd.read_csv(full / "history.csv")[cols], rtol=1e-5)
    # The levels a row ends with are the next epoch's starting levels.
    nxt = la[la["epoch"] < 4].set_index(["epoch", "class"])["next_level"]
    cur = la[la["epoch"] > 1].assign(epoch=lambda f: f["epoch"] - 1).set_index(
        ["epoch", "class"])["level"]
    assert nxt.sort_index().tolist() == cur.sort_index().tolist()
    # cuda_levels.csv deleted: rebuilt from the final checkpoint, no training.
    (full / CU.OUTPUT).unlink()
    T.train(cell, seed=1, out=full, run=RUN)
    pd.testing.assert_frame_equal(pd.read_csv(full / CU.OUTPUT), lb)


@pytest.mark.parametrize("experiment", ["plain_balanced", "augmented_cuda"])
def test_new_experiments_learn_digits_lt(experiment, data_root, tmp_path):
    # The plain experiment's threshold (test_classify_train: top-1 >= 0.8 after 10 epochs).
    cell = _cell(data_root, experiment, epochs=10, early_stopping_patience=None,
                 **({"augmentation": {"crop_padding": 4}} if experiment == "augmented_cuda" else {}))
    s = T.train(cell, seed=1, out=tmp_path / "run", run=RUN)
    assert s["top1"] >= 0.8, s["top1"]
    drawn = np.array(s["sampled_per_class_per_epoch"])
    if experiment == "plain_balanced":  # the tail drawn about as often as the head
        assert drawn[-1] > 0.5 * drawn[0] and s["sampling"] == "class_balanced"
    else:
        levels = pd.read_csv(tmp_path / "run" / CU.OUTPUT)
        assert len(levels) == 10 * 10 and s["cuda_levels_final"] == \
            levels[levels["epoch"] == 10]["next_level"].tolist()
        assert max(s["cuda_levels_final"]) > 0  # the curriculum moved
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["hparams"]["experiment"]["cuda"]["enabled"] is True
