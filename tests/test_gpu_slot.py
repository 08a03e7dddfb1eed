"""workflow/scripts/gpu_slot.py with a fake `nvidia-smi` on PATH listing two GPUs.

Each job prints the CUDA_VISIBLE_DEVICES it got, then holds its slot until a file named
after it appears; a job with no free slot says `waiting` on stderr once. The tests
synchronise on those lines (no sleeps): they read a job's line before starting the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow/scripts/gpu_slot.py"
UUIDS = ("GPU-aaaaaaaa-0000", "GPU-bbbbbbbb-1111")


@pytest.fixture
def box(tmp_path):
    """A directory with a fake nvidia-smi (two GPUs) first on PATH; returns (dir, env)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    rows = "".join(f"{i}, {u}\\n" for i, u in enumerate(UUIDS))
    smi.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--query-gpu=index,uuid*--format=csv,noheader*) '
        f"printf '{rows}' ;; *) exit 9 ;; esac\n"
    )
    smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "SCOPELOSS_GPU_SLOT_POLL_S": "0.05"}
    for key in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SCOPELOSS_JOBS_PER_GPU",
                "SCOPELOSS_GPU_LOCK_DIR"):
        env.pop(key, None)
    work = tmp_path / "work"
    work.mkdir()
    return work, env


class Job:
    def __init__(self, cwd: Path, env: dict, name: str, *flags: str):
        self.cwd, self.name = cwd, name
        holder = f'echo "$CUDA_VISIBLE_DEVICES"; while [ ! -f {name} ]; do sleep 0.02; done'
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), *flags, "--", "sh", "-c", holder],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def gpu(self) -> str:
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        return line.strip()

    def stderr_line(self) -> str:
        return self.proc.stderr.readline().strip()

    def release(self) -> int:
        (self.cwd / self.name).touch()
        return self.proc.wait(timeout=30)


def test_two_gpus_k2_four_jobs_spread_then_stack_and_a_fifth_waits(box):
    cwd, env = box
    env["SCOPELOSS_JOBS_PER_GPU"] = "2"
    jobs, gpus = [], []
    for i in range(4):
        jobs.append(Job(cwd, env, f"r{i}"))
        gpus.append(jobs[-1].gpu())
        if i == 1:  # spread before stacking: the first two are on different GPUs
            assert sorted(gpus) == sorted(UUIDS)
    assert Counter(gpus) == {UUIDS[0]: 2, UUIDS[1]: 2}
    fifth = Job(cwd, env, "r4")
    assert "waiting" in fifth.stderr_line()
    assert fifth.proc.poll() is None
    # Free one slot of the second GPU: the fifth takes exactly that GPU.
    first_on_b = gpus.index(UUIDS[1])
    assert jobs[first_on_b].release() == 0
    assert fifth.gpu() == UUIDS[1]
    assert "CUDA_VISIBLE_DEVICES=" + UUIDS[1] in fifth.stderr_line()
    for job in [*jobs, fifth]:
        assert job.release() == 0


def test_a_cpu_job_claims_nothing(box):
    cwd, env = box
    env["SCOPELOSS_JOBS_PER_GPU"] = "1"
    holders = [Job(cwd, env, "h0"), Job(cwd, env, "h1")]
    assert sorted(h.gpu() for h in holders) == sorted(UUIDS)  # every slot is taken
    cpu = subprocess.run([sys.executable, str(SCRIPT), "--gpus", "0", "--", "sh", "-c",
                          'echo "[${CUDA_VISIBLE_DEVICES-unset}]"'],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    assert cpu.returncode == 0 and cpu.stdout.strip() == "[unset]"  # ran at once, unchanged
    # ...and took no slot: a GPU job still finds none free.
    waiter = Job(cwd, env, "w")
    assert "waiting" in waiter.stderr_line()
    assert holders[0].release() == 0
    assert waiter.gpu() in UUIDS
    for job in (holders[1], waiter):
        assert job.release() == 0


@pytest.mark.parametrize("given, expected", [("1", UUIDS[1]), (UUIDS[0], UUIDS[0]),
                                             ("GPU-bbbb", UUIDS[1])])
def test_a_given_cuda_visible_devices_is_respected(box, given, expected):
    """SLURM/salloc (or the user) gave one GPU, by index, UUID or UUID prefix: K=2 jobs
    share it, a third waits, the other GPU is never used."""
    cwd, env = box
    env.update(CUDA_VISIBLE_DEVICES=given, SCOPELOSS_JOBS_PER_GPU="2", SLURM_JOB_ID="42")
    a, b = Job(cwd, env, "a"), None
    assert a.gpu() == expected
    b = Job(cwd, env, "b")
    assert b.gpu() == expected
    c = Job(cwd, env, "c")
    assert "waiting" in c.stderr_line()
    assert a.release() == 0
    assert c.gpu() == expected
    for job in (b, c):
        assert job.release() == 0


def test_without_a_cap_the_token_count_limits_and_jobs_spread(box):
    """No SCOPELOSS_JOBS_PER_GPU: least-loaded placement, so T tokens on G GPUs never put
    more than ceil(T/G) jobs on one GPU (three jobs on two GPUs: 2 + 1)."""
    cwd, env = box
    jobs = [Job(cwd, env, f"n{i}") for i in range(1)]
    gpus = [jobs[0].gpu()]
    for i in range(1, 3):
        jobs.append(Job(cwd, env, f"n{i}"))
        gpus.append(jobs[-1].gpu())
    assert gpus[0] != gpus[1] and sorted(Counter(gpus).values()) == [1, 2]
    for job in jobs:
        assert job.release() == 0


def test_no_gpu_runs_the_command_unchanged(box, tmp_path):
    cwd, env = box
    (Path(env["PATH"].split(os.pathsep)[0]) / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    out = subprocess.run([sys.executable, str(SCRIPT), "--", "sh", "-c",
                          'echo "[${CUDA_VISIBLE_DEVICES-unset}]"'],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "[unset]"
    env["CUDA_VISIBLE_DEVICES"] = ""  # an empty list: no GPU either
    out = subprocess.run([sys.executable, str(SCRIPT), "--", "sh", "-c",
                          'echo "[${CUDA_VISIBLE_DEVICES-unset}]"'],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "[]"


def test_bad_usage_is_refused(box):
    cwd, env = box
    out = subprocess.run([sys.executable, str(SCRIPT), "sh"], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "usage" in out.stderr
