"""Driving the classifier trainer from tests: its CLI arguments on ``digits_lt``
(``classifier_args``), a short budget (``SMALL``), and a run in this process that can stop
after an epoch (``run_in_process``, ``Stop``)."""

from __future__ import annotations

from scopeloss.classify import config as C
from scopeloss.classify import train as T

SMALL = ("experiment.epochs=2", "dataset.max_per_class=40", "experiment.batch_size=32",
         "experiment.early_stopping_patience=null")


def classifier_args(root, out, *sets, experiment="plain", loss="ce"):
    return ["--dataset", "digits_lt", "--experiment", experiment, "--loss", loss, "--seed", "1",
            "--out", str(out), "--set", f"dataset.root={root}",
            "--set", "experiment.model=resnet18", "--set", "run.torch_threads=1",
            "--set", "run.num_workers=0", *[a for s in sets for a in ("--set", s)]]


class Stop(Exception):
    pass


def run_in_process(root, out, *sets, stop_after=None, **kw):
    a = T.build_parser().parse_args(classifier_args(root, out, *sets, **kw))
    hp, run = C.split_run(C.parse_set(a.set))
    h = C.resolve(a.dataset, a.experiment, a.loss, None, hp)

    def stop(epoch):
        if stop_after is not None and epoch == stop_after:
            raise Stop()
    return T.train(h, seed=a.seed, out=a.out, on_epoch_end=stop,
                   run=C.resolve_run(None, run))


