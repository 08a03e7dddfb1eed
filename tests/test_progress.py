"""scopeloss.progress.RunLogger: TensorBoard scalars read back with tensorboard's own
EventAccumulator, and the progress line's cadence, rate and ETA under a fake clock."""

from __future__ import annotations

import io

import pytest

from scopeloss.progress import RunLogger, format_duration


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _read(tb_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_scalars_are_readable_back_from_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    with RunLogger(tmp_path, stream=io.StringIO()) as log:
        log.scalars(512, {"train/policy_loss": 0.5, "perf/sps": 1000.0, "skip": float("nan"),
                          "text": "not a number"})
        log.scalars(1024, {"train/policy_loss": 0.25, "perf/sps": 1200})
    got = _read(tmp_path / "tb")
    assert set(got) == {"train/policy_loss", "perf/sps"}
    assert got["train/policy_loss"] == [(512, 0.5), (1024, 0.25)]
    assert got["perf/sps"] == [(512, 1000.0), (1024, 1200.0)]


def test_a_resumed_run_drops_the_interrupted_attempts_later_points(tmp_path):
    pytest.importorskip("tensorboard")
    with RunLogger(tmp_path, stream=io.StringIO()) as log:
        for step in (1, 2, 3):
            log.scalars(step, {"x": float(step)})
    with RunLogger(tmp_path, resume_step=3, stream=io.StringIO()) as log:  # resumed at 3
        log.scalars(3, {"x": 30.0})
        log.scalars(4, {"x": 40.0})
    assert _read(tmp_path / "tb")["x"] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_disabled_writes_nothing(tmp_path):
    log = RunLogger(tmp_path, enabled=False, stream=io.StringIO())
    log.scalars(1, {"x": 1.0})
    log.close()
    assert not (tmp_path / "tb").exists()


def test_progress_rate_and_eta_with_a_fake_clock():
    clock, out = Clock(), io.StringIO()
    log = RunLogger("unused", total=100, unit="update", clock=clock, stream=out,
                    every_s=30, every_frac=0.05, min_interval_s=1)
    first = log.progress(0, 0)
    assert first.startswith("update 0/100 (0.0%) | step 0 |") and "ETA ?" in first
    clock.t += 10                      # 4 updates in 10 s: not yet 5 %, not yet 30 s
    assert log.progress(4, 4 * 512) is None
    clock.t += 2.5                     # 5 updates in 12.5 s: 5 % mark -> printed
    line = log.progress(5, 5 * 512, ret=12.345678)
    # rate 5/12.5 = 0.4 update/s; 95 left -> 237.5 s -> 0:03:58 (rounded); 2560/12.5 steps/s
    assert "update 5/100 (5.0%)" in line and "0.4 update/s" in line
    assert "204.8 steps/s" in line and "elapsed 0:00:12" in line
    assert "ETA 0:03:58" in line and line.endswith("ret 12.35")
    clock.t += 0.5                     # 10 % reached, but within min_interval_s: quiet
    assert log.progress(10, 10 * 512) is None
    clock.t += 29.6                    # 30 s since the last line: printed without a mark
    line = log.progress(11, 11 * 512)
    assert line is not None and "update 11/100" in line
    # rate 11/42.6 s; ETA = 89 / (11/42.6) = 344.67 s
    assert "ETA 0:05:45" in line
    clock.t += 1
    assert "ETA 0:00:00" in log.progress(100, 100 * 512)  # the last unit always prints
    assert out.getvalue().count("\n") == len(log.lines) == 4


def test_a_resumed_run_measures_its_rate_from_where_it_resumed():
    clock = Clock()
    log = RunLogger("unused", total=1000, start=900, clock=clock, stream=io.StringIO())
    log.progress(900, 0)
    clock.t += 100
    line = log.progress(950, 0)  # 50 updates in 100 s -> 0.5/s; 50 left -> 100 s
    assert "0.5 update/s" in line and "ETA 0:01:40" in line


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (59.6, "0:01:00"), (3723, "1:02:03"),
                                           (90061, "1d 1:01:01"), (None, "?"), (float("inf"), "?")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
