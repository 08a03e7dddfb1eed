"""The smoke grid submitted to a real one-node SLURM cluster through profiles/slurm.

tests/slurm/cluster.sh brings up slurmctld, slurmd and accounting (slurmdbd over MariaDB)
with one fake GPU of 2 shards; the shipped profile is copied with its EDIT_ME placeholders
filled in from tests/slurm/site.yaml (a user's edit), nothing else changed but the first
status check's delay (2 s instead of 40: test time). Then, in file order: the grid runs,
every training job as its own sbatch job (sacct), a GPU cell with the GPU and a CPU cell
without; a second invocation plans nothing; with the profile's shard lines switched on, a
GPU cell asks a shard; a training job cancelled with scancel and one that fails are
reported as failed (non-zero exit), and the same command resumes the cancelled one from its
checkpoint; finally, on a cluster without accounting (sacct fails there), a job completes
with the same profile (its squeue status command).

Needs root (daemons) and apt-get or the Debian packages; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from workflow_helpers import BIN, ROOT, copy_workflow, snakemake

CLUSTER = ROOT / "tests/slurm/cluster.sh"
SITE = yaml.safe_load((ROOT / "tests/slurm/site.yaml").read_text())
PACKAGES = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/slurmdbd", "/usr/sbin/munged",
            "/usr/sbin/mariadbd")
# The smoke preset with device auto: the Atari game (Pong) is a GPU cell, CartPole and the
# digits classifier stay on the CPU. The job resolves auto to cpu (the GPU here is fake).
GRID = ("--configfile", "presets/smoke.yaml", "slurm-grid.yaml")
GRID_OVERLAY = "rl:\n  run: {device: auto}\n"
TRAINING = {"train_rl", "train_classifier"}


def _why_skip() -> str | None:
    if os.geteuid() != 0:
        return "the SLURM test starts slurmctld/slurmd/slurmdbd/MariaDB: needs root"
    if not all(Path(p).exists() for p in PACKAGES) and not shutil.which("apt-get"):
        return "the SLURM test needs Debian's slurm/munge/mariadb packages or apt-get to install them"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.skipif(_why_skip() is not None, reason=str(_why_skip()))]


class Cluster:
    def __init__(self, state: Path):
        self.state = state

    def up(self, *flags: str) -> None:
        proc = subprocess.run([str(CLUSTER), "up", str(self.state), *flags], capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        os.environ["SLURM_CONF"] = proc.stdout.strip().splitlines()[-1]

    def down(self) -> None:
        subprocess.run([str(CLUSTER), "down", str(self.state)], timeout=120)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    before = os.environ.get("SLURM_CONF")
    c = Cluster(tmp_path_factory.mktemp("slurm") / "state")
    start = time.monotonic()
    c.up()
    print(f"cluster up in {time.monotonic() - start:.1f} s")
    yield c
    c.down()
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before


def site_profile(wf: Path, name: str, *, uncomment: tuple[str, ...] = ()) -> str:
    """profiles/slurm with the site's partition and account filled in (what a user edits),
    the given commented lines switched on, and a 2 s first status check."""
    text = (wf / "profiles/slurm/config.yaml").read_text()
    for placeholder, value in SITE.items():
        assert placeholder in text, f"profiles/slurm lost its placeholder {placeholder}"
        text = text.replace(placeholder, value)
    for line in uncomment:
        pattern = re.compile(rf"^(\s*)# ({re.escape(line)})", flags=re.M)
        assert pattern.search(text), f"profiles/slurm has no commented line {line!r}"
        text = pattern.sub(r"\1\2", text)
    text += "\nslurm-init-seconds-before-status-checks: 2\n"
    (wf / "profiles" / name).mkdir()
    (wf / "profiles" / name / "config.yaml").write_text(text)
    return f"profiles/{name}"


def sacct(*fields: str) -> list[dict]:
    proc = subprocess.run(["sacct", "-X", "-n", "-P", "-a", "-S", "now-1days",
                           "-o", ",".join(fields)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [dict(zip(fields, line.split("|"))) for line in proc.stdout.splitlines() if line]


def jobs_of(rule: str, *values: str) -> list[dict]:
    """sacct records of the executor's jobs of a rule, or of one cell given its wildcard
    values in the output pattern's order: the executor's --comment is
    `rule_<rule>_wildcards_<values joined by _>`."""
    rows = sacct("JobID", "Comment", "State", "AllocTRES")
    if not values:
        return [r for r in rows if re.fullmatch(rf"rule_{rule}(_wildcards_.*)?", r["Comment"])]
    return [r for r in rows if r["Comment"] == f"rule_{rule}_wildcards_{'_'.join(values)}"]


def run(wf: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = snakemake(wf, *args, timeout=timeout)
    proc.out = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    return proc


@pytest.fixture(scope="module")
def grid(cluster, tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("slurm-wf"))
    (wf / "slurm-grid.yaml").write_text(GRID_OVERLAY)
    profile = site_profile(wf, "slurm-site")
    start = time.monotonic()
    proc = run(wf, "--profile", profile, *GRID)
    print(f"smoke grid through SLURM: {time.monotonic() - start:.0f} s")
    assert proc.returncode == 0, proc.out[-6000:]
    return wf, profile, proc.out


def test_every_training_job_ran_as_its_own_sbatch_job(grid):
    wf, _, _ = grid
    expected = ({("train_rl", e, l, "1") for e in ("CartPole", "Pong") for l in ("policy", "scope")}
                | {("train_classifier", "digits_lt", x, l, "1") for x in ("plain", "augmented")
                   for l in ("ce", "scope")})
    seen = {}
    for rule, *values in expected:
        rows = jobs_of(rule, *values)
        assert len(rows) == 1, (rule, values, rows)
        assert rows[0]["State"] == "COMPLETED", rows[0]
        seen[(rule, *values)] = rows[0]["JobID"]
    assert len(set(seen.values())) == len(expected)  # one sbatch job each
    # every other rule ran through SLURM as well (none is a localrule but the Caltech fetch)
    assert jobs_of("aggregate_rl") and jobs_of("precision_tables")
    # outputs complete
    for e in ("CartPole", "Pong"):
        for l in ("policy", "scope"):
            s = json.loads((wf / f"results/rl/{e}/{l}/seed1/summary.json").read_text())
            assert s["global_step"] >= s["hparams"]["ppo"]["total_steps"]
    for x in ("plain", "augmented"):
        assert (wf / f"results/tables/precision_{x}.md").is_file()
    assert (wf / "figures/rl_training_curves.png").stat().st_size > 10_000


def test_a_gpu_cell_asks_the_gpu_and_a_cpu_cell_none(grid):
    [pong] = jobs_of("train_rl", "Pong", "scope", "1")
    [cartpole] = jobs_of("train_rl", "CartPole", "scope", "1")
    [digits] = jobs_of("train_classifier", "digits_lt", "plain", "ce", "1")
    assert "gres/gpu=1" in pong["AllocTRES"], pong
    assert "gres/gpu" not in cartpole["AllocTRES"] and "gres/shard" not in cartpole["AllocTRES"]
    assert "gres/gpu" not in digits["AllocTRES"], digits


def test_a_second_invocation_plans_nothing(grid):
    wf, profile, _ = grid
    proc = run(wf, "--profile", profile, *GRID, "-n")
    assert proc.returncode == 0, proc.out[-3000:]
    assert "Nothing to be done" in proc.out, proc.out[-3000:]


def test_with_the_shard_lines_on_a_gpu_cell_asks_a_shard(grid):
    wf, _, _ = grid
    shards = site_profile(wf, "slurm-shards", uncomment=("gpu: 0", 'gres: "shard:1"'))
    target = "results/rl/Pong/policy/seed1/summary.json"
    before = {r["JobID"] for r in jobs_of("train_rl", "Pong", "policy", "1")}
    proc = run(wf, "--profile", shards, *GRID, "--force", target)
    assert proc.returncode == 0, proc.out[-4000:]
    [new] = [r for r in jobs_of("train_rl", "Pong", "policy", "1") if r["JobID"] not in before]
    assert "gres/shard=1" in new["AllocTRES"] and "gres/gpu" not in new["AllocTRES"], new
    # a finished cell forced again rebuilds its outputs from the final checkpoint
    log = (wf / "logs/rl/Pong/policy/seed1.log").read_text()
    assert "rebuilding outputs from the final checkpoint" in log


LONG = "rl:\n  run: {device: auto}\n  seeds: [5, 6]\n  env_specs:\n    CartPole: {total_steps: 30000}\n"


def test_scancel_and_a_failing_job_fail_the_run_then_the_same_command_resumes(grid):
    """One invocation, two training jobs: one is cancelled with scancel once it has a
    checkpoint, the other fails (its checkpoint directory is a file). Snakemake reports both
    as failed and exits non-zero; the same command then resumes the cancelled one from its
    checkpoint (its log says so) and the grid of that target ends complete."""
    wf, profile, _ = grid
    (wf / "slurm-long.yaml").write_text(LONG)
    cancelled = "results/rl/CartPole/policy/seed5"
    failing = "results/rl/CartPole/scope/seed6"
    (wf / failing).mkdir(parents=True)
    (wf / failing / ".ckpt").write_text("a file where the trainer keeps its checkpoint directory")
    cmd = ("--profile", profile, "--configfile", "presets/smoke.yaml", "slurm-long.yaml",
           "--retries", "0", f"{cancelled}/summary.json", f"{failing}/summary.json")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    sm = subprocess.Popen([str(BIN / "snakemake"), *cmd], cwd=wf, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = wf / cancelled / ".ckpt"
    deadline = time.monotonic() + 300
    while not (ckpt.is_dir() and any(p.suffix == ".pt" for p in ckpt.iterdir())):
        if sm.poll() is not None or time.monotonic() > deadline:
            sm.kill()
            pytest.fail("the training job made no checkpoint: " + sm.communicate()[0][-4000:])
        time.sleep(0.5)
    # the job as the controller sees it now (accounting records may lag)
    queue = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True,
                           timeout=60).stdout
    [job] = [line.split("|")[0] for line in queue.splitlines()
             if line.split("|")[1:] == ["rule_train_rl_wildcards_CartPole_policy_5", "RUNNING"]]
    subprocess.run(["scancel", job], check=True, timeout=60)
    out = sm.communicate(timeout=600)[0]
    assert sm.returncode != 0, out[-4000:]
    assert re.search(rf"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'", out), out[-4000:]
    # both jobs reported failed by the executor (the jobs' own logs follow, shown too)
    assert len(set(re.findall(r"SLURM-job '(\d+)' failed", out))) == 2, out[-4000:]
    time.sleep(2)  # accounting catches up
    assert [r["State"].split()[0] for r in jobs_of("train_rl", "CartPole", "policy", "5")] == ["CANCELLED"]
    assert [r["State"] for r in jobs_of("train_rl", "CartPole", "scope", "6")] == ["FAILED"]
    assert not (wf / failing / "summary.json").exists()

    # the same command again (the failing cell repaired): resumes, completes
    (wf / failing / ".ckpt").unlink()
    proc = run(wf, *cmd)
    assert proc.returncode == 0, proc.out[-4000:]
    log = (wf / "logs/rl/CartPole/policy/seed5.log").read_text()
    assert re.search(r"resuming \S+ at update \d+", log), log[-3000:]
    summary = json.loads((wf / cancelled / "summary.json").read_text())
    assert summary["global_step"] >= 30000 and len(summary["resumes"]) == 1


# A CartPole run far longer than its 3-minute SLURM time limit.
TIME_LIMIT = ("rl:\n  run: {device: auto, checkpoint_every: 1000}\n  seeds: [7]\n"
              "  env_specs:\n    CartPole: {total_steps: 50000000}\n")


def test_a_job_reaching_its_time_limit_is_warned_checkpoints_and_resumes(grid):
    """The shipped profile's warning signal, for real: a job given a 3-minute limit, with
    the profile's `--signal=TERM@<s>` set to 60 s, gets SIGTERM from SLURM before the limit
    (SLURM sends it up to 60 s early); the trainer stops after the update in progress,
    checkpoints it off its 1000-update cadence, says the same command resumes, and exits
    before the limit; the same command does resume there."""
    wf, _, _ = grid
    text = (wf / "profiles/slurm-site/config.yaml").read_text()
    assert text.count('slurm_extra: "--signal=TERM@120"') == 2
    profile = wf / "profiles/slurm-limit"
    profile.mkdir()
    # train_rl's block comes first: its warning at 60 s, and a 3-minute limit (in the
    # profile: a --set-resources on the command line would replace the profile's)
    text = text.replace('slurm_extra: "--signal=TERM@120"',
                        'slurm_extra: "--signal=TERM@60"\n    runtime: 3', 1)
    (profile / "config.yaml").write_text(text)
    (wf / "slurm-limit.yaml").write_text(TIME_LIMIT)
    cell = "results/rl/CartPole/policy/seed7"
    # the target first: --set-resources and --configfile take every word after them
    cmd = (f"{cell}/summary.json", "--profile", "profiles/slurm-limit", "--retries", "0",
           "--configfile", "presets/smoke.yaml", "slurm-limit.yaml")
    start = time.monotonic()
    proc = run(wf, *cmd, timeout=600)
    assert proc.returncode != 0, proc.out[-4000:]  # the job stopped before its end
    log = (wf / "logs/rl/CartPole/policy/seed7.log").read_text()
    found = re.search(r"interrupted \(SIGTERM\) after update (\d+), checkpointed; the same "
                      r"command resumes from update (\d+)", log)
    assert found, log[-3000:]
    print(f"time-limited job through SLURM: {time.monotonic() - start:.0f} s")
    last = int(found.group(1))
    assert int(found.group(2)) == last + 1 and last % 1000  # a checkpoint off its cadence
    assert "Traceback" not in log
    time.sleep(2)  # accounting catches up
    [record] = jobs_of("train_rl", "CartPole", "policy", "7")
    # the trainer ended itself (exit 143) before SLURM's limit struck (TIMEOUT)
    assert record["State"].split()[0] == "FAILED", record

    # the same command again: resumes from the next update (then cancelled: its end is far)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    sm = subprocess.Popen([str(BIN / "snakemake"), *cmd], cwd=wf, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    logfile = wf / "logs/rl/CartPole/policy/seed7.log"
    resumed = None
    while time.monotonic() < deadline and sm.poll() is None:
        resumed = re.search(r"resuming \S+ at update (\d+)", logfile.read_text()
                            if logfile.exists() else "")
        if resumed:
            break
        time.sleep(1)
    queue = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True,
                           timeout=60).stdout
    for line in queue.splitlines():
        if "CartPole_policy_7" in line:
            subprocess.run(["scancel", line.split("|")[0]], timeout=60)
    sm.communicate(timeout=300)
    assert resumed and int(resumed.group(1)) == last + 1, logfile.read_text()[-3000:]


def test_without_accounting_a_job_completes_with_the_shipped_profile(cluster, tmp_path_factory):
    """sacct fails on a cluster without slurmdbd; the shipped profile's squeue status command
    still sees the job end (one training cell: the status query is what is tested)."""
    cluster.down()
    cluster.up("--no-accounting")
    assert subprocess.run(["sacct", "-X"], capture_output=True, timeout=60).returncode != 0
    wf = copy_workflow(tmp_path_factory.mktemp("slurm-noacct"))
    (wf / "slurm-grid.yaml").write_text(GRID_OVERLAY)
    profile = site_profile(wf, "slurm-noacct")
    target = "results/rl/CartPole/scope/seed1/summary.json"
    start = time.monotonic()
    proc = run(wf, target, "--profile", profile, *GRID, timeout=600)
    print(f"one cell through SLURM without accounting: {time.monotonic() - start:.0f} s")
    assert proc.returncode == 0, proc.out[-6000:]
    assert json.loads((wf / target).read_text())["global_step"] == 1024


def test_down_leaves_munge_as_it_found_it(cluster):
    """munged ran as munge: after `down` its log folder is munge's, and a munged started the
    way its service starts it runs (a root-owned log made it refuse: "Logfile is insecure")."""
    import pwd

    cluster.down()
    munge = pwd.getpwnam("munge").pw_uid
    log_dir = Path("/var/log/munge")
    assert all(p.stat().st_uid == munge for p in [log_dir, *log_dir.iterdir()])
    pid = Path("/run/munge/normal-start.pid")
    proc = subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--pid-file",
                           str(pid)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    os.kill(int(pid.read_text()), 15)

