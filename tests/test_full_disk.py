"""A full disk is one message naming the file, the OS error and the space (issue 29), tested on
a small tmpfs (skipped, with the reason, where mount is not allowed)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scopeloss import atomic


@pytest.fixture()
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _rl_fills_the_disk(out, *sets):
    """A CartPole run into ``out`` on the small disk: exit 1 with a last line naming the
    failed write and the OS error, no traceback; that line."""
    proc = subprocess.run(
        [sys.executable, "-m", "scopeloss.rl.train", "--env", "CartPole-v1", "--loss", "policy",
         "--seed", "1", "--out", str(out), "--set", "ppo.total_steps=200000",
         "--set", "ppo.num_envs=4", "--set", "ppo.num_steps=64", "--set", "run.torch_threads=1",
         *[a for s in sets for a in ("--set", s)]],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not write ") and "No space left on device" in last
    return last


def test_a_csv_on_a_full_disk_names_file_error_and_space(small_disk):
    frame = pd.DataFrame({"x": np.arange(100_000)})
    with pytest.raises(atomic.WriteError) as info:
        atomic.write_csv(small_disk / "big.csv", frame)
    text = str(info.value)
    size = len(frame.to_csv(index=False).encode())
    assert text.startswith(f"could not write {small_disk / 'big.csv'}: No space left on device")
    assert f"the write needed {size} bytes" in text and f"bytes free in {small_disk}" in text
    free = int(text.split("; ")[1].split(" bytes free")[0])
    assert free < size
    assert list(small_disk.iterdir()) == []  # the partial file is gone


def test_the_rl_trainer_on_a_full_disk_says_so_in_one_line(small_disk):
    out = small_disk / "run"
    last = _rl_fills_the_disk(out, "run.checkpoint_every=1", "run.tensorboard=false")
    assert str(out) in last and "bytes free in" in last


def test_tensorboard_on_a_full_disk_is_one_error_naming_its_folder(small_disk, capfd):
    from scopeloss.progress import RunLogger

    board = RunLogger(small_disk / "run", total=10)
    board.scalars(0, {"x": 1.0})
    board.flush()
    (small_disk / "filler").write_bytes(b"\0" * 0)
    with open(small_disk / "filler", "wb") as f:  # fill what is left
        try:
            f.write(b"\0" * (1 << 20))
        except OSError:
            pass
    with pytest.raises(atomic.WriteError) as info:
        for step in range(1, 2000):
            board.scalars(step, {f"x{k}": float(step) for k in range(20)})
        board.flush()
    text = str(info.value)
    assert text.startswith(f"could not write TensorBoard events {small_disk / 'run' / 'tb'}")
    assert "No space left on device" in text and "bytes free in" in text
    board.close()
    assert "Traceback" not in capfd.readouterr().err


def test_the_rl_trainer_with_tensorboard_on_a_full_disk_says_so_in_one_line(small_disk):
    _rl_fills_the_disk(small_disk / "run", "run.checkpoint_every=1000")


def test_a_disk_full_before_the_start_names_the_path_and_leaves_nothing(small_disk):
    """The disk is full before the trainer writes a byte: one line naming the file it could
    not write (never a bare [Errno 28]); the run directory it created is removed."""
    with open(small_disk / "filler", "wb") as f:
        try:
            f.write(b"\0" * (1 << 20))
        except OSError:
            pass
    out = small_disk / "runs/run"
    proc = subprocess.run(
        [sys.executable, "-m", "scopeloss.rl.train", "--env", "CartPole-v1", "--loss", "policy",
         "--seed", "1", "--out", str(out), "--set", "ppo.total_steps=512",
         "--set", "run.tensorboard=false"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "No space left on device" in last and str(out) in last, last
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
