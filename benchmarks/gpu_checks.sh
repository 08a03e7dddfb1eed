#!/usr/bin/env bash
# The GPU checks of docs/gpu.md, writing a few files into OUT (the device
# tool's $OUT). A session's device time is 15 minutes in all, so the checks are ONE call:
#
#   bash benchmarks/gpu_checks.sh all           # 1 + 2 + 2b + 3 below, at most 8 minutes
#
# or one section per call:
#   bash benchmarks/gpu_checks.sh correctness   # 1: tests, short cuda runs, syncs  (<= 100 s in all)
#   bash benchmarks/gpu_checks.sh throughput    # 2: RL/classifier rates, K jobs/GPU (<= 120 s in all)
#   bash benchmarks/gpu_checks.sh compile       # 2b: eager / compile / CUDA graphs x K = 1, 4, 5, 8 (<= 250 s)
#   bash benchmarks/gpu_checks.sh estimate      # 3: the paper grid's cost from 2's rates (<= 20 s)
#   bash benchmarks/gpu_checks.sh learning      # Pong, policy_entropy, 9 minutes (not in all)
#
# Wheels the machine lacks: bash benchmarks/gpu_wheels.sh (here), carry .whl, and set
# WHEELS=.whl there (installed into /tmp/site first). DEVICE=cpu QUICK=1 runs the same
# commands at toy size on a CPU, to check the script itself.
set -uo pipefail
section=${1:?usage: gpu_checks.sh all|correctness|throughput|compile|estimate|learning}
if [ "$section" = all ]; then  # each section under its own limit: 100 + 120 + 250 + 20 s
  start=$(date +%s)
  timeout 100 bash "$0" correctness; echo "correctness: rc $?"
  timeout 120 bash "$0" throughput; echo "throughput: rc $?"
  timeout 250 bash "$0" compile; echo "compile: rc $?"
  timeout 20 bash "$0" estimate; echo "estimate: rc $?"
  echo "all: $(( $(date +%s) - start )) s"
  exit 0
fi
OUT=${OUT:-gpu_checks_out}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
work=$(mktemp -d)
report="$OUT/$section.txt"
say() { echo "$*" | tee -a "$report"; }
scaled() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }  # full, quick

{
  echo "# GPU checks: $section"
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  echo "cores: $(nproc)"
  $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__)"
  $PY -c "import ale_py, gymnasium, procgen, minatar; print('envs import: ok')" 2>&1 | tail -1
} > "$report"

rl_run() {  # NAME ENV STEPS [--set ...]: a short PPO run on DEVICE; its log in $work
  local name=$1 env=$2 steps=$3; shift 3
  $PY -m scopeloss.rl.train --env "$env" --loss scope --seed 1 --out "$work/$name" \
    --set ppo.total_steps="$steps" --set run.device="$DEVICE" --set run.tensorboard=false \
    "$@" > "$work/$name.log" 2>&1
}

case $section in
correctness)
  say "## 1. Correctness on $DEVICE"
  # shellcheck disable=SC2046  # the file list is meant to split
  timeout 60 $PY -m pytest -q -p no:cacheprovider $(scaled "tests/test_losses.py \
    tests/test_classify_step.py tests/test_curriculum_ops.py" tests/test_losses.py) 2>&1 | tail -3 | tee -a "$report"
  # Host syncs as CUDA reports them (every one: warnings not deduplicated).
  export SCOPELOSS_SYNC_DEBUG=warn PYTHONWARNINGS=always::UserWarning
  for compile in false true; do
    # QUICK (a CPU rehearsal): MinAtar instead of the IMPALA CNN, which takes minutes on a CPU
    rl_run "breakout_c$compile" "$(scaled Breakout MinAtarBreakout)" "$(scaled 8192 1024)" \
      --set run.compile=$compile
    rc=$?
    syncs=$(grep -c "synchronizing CUDA operation" "$work/breakout_c$compile.log")
    say "$(scaled Breakout MinAtarBreakout) bf16 compile=$compile: rc $rc, $(grep -o '"global_step": [0-9]*' \
      "$work/breakout_c$compile/summary.json" 2>/dev/null), host syncs reported: $syncs" \
      "($(scaled 8 2) updates of 8 envs x 128 steps)"
    $PY -m scopeloss.classify.train --dataset digits_lt --experiment augmented_cuda --loss scope \
      --seed 1 --out "$work/digits_c$compile" --set experiment.model=resnet18 \
      --set experiment.epochs=2 --set run.device="$DEVICE" --set run.compile=$compile \
      --set run.num_workers=0 --set run.tensorboard=false \
      --set dataset.root="$work/data" > "$work/digits_c$compile.log" 2>&1
    rc=$?
    syncs=$(grep -c "synchronizing CUDA operation" "$work/digits_c$compile.log")
    say "digits_lt resnet18 augmented_cuda (Table 5 + CUDA ops) bf16 compile=$compile: rc $rc, top1 $(grep -o \
      '"top1": [0-9.]*' "$work/digits_c$compile/summary.json" 2>/dev/null | cut -d' ' -f2)," \
      "host syncs reported: $syncs (2 epochs)"
  done
  unset SCOPELOSS_SYNC_DEBUG PYTHONWARNINGS
  for f in "$work"/*.log; do echo "### $f"; grep -m 20 -A2 "synchronizing CUDA" "$f"; done \
    > "$OUT/correctness_syncs.txt" 2>&1
  tar -czf "$OUT/correctness_logs.tar.gz" -C "$work" --exclude='*.pt' --exclude=data . ;;

throughput)
  say "## 2. Throughput on $DEVICE"
  # shellcheck disable=SC2046  # the env list is meant to split
  timeout 90 $PY benchmarks/rl_throughput.py --device "$DEVICE" --updates "$(scaled 2 1)" \
    --envs $(scaled "Breakout StarPilot" MinAtarBreakout) \
    > "$OUT/rl_throughput.json" 2>"$work/rl.err"
  say "rl_throughput: $OUT/rl_throughput.json (rc $?)"
  # K concurrent jobs x compile modes: section "compile"
  for flag in "" --compile; do
    timeout 45 $PY benchmarks/classify_throughput.py --device "$DEVICE" \
      --batch-size "$(scaled 64 4)" --iters "$(scaled 30 2)" $flag 2>&1 | tail -1 \
      | tee -a "$report"
  done
  [ "$QUICK" = 1 ] || timeout 60 $PY -m scopeloss.plan --calibrate --gpus 1 --jobs-per-gpu 1 \
    --save-rates "$OUT/rates.yaml" 2>&1 | tail -20 | tee -a "$report" ;;

compile)
  # Eager, torch.compile (default) and torch.compile with CUDA graphs (reduce-overhead) at
  # K = 1, 4, 5, 8 concurrent Breakout jobs on the one GPU, each on its share of the cores,
  # for a fixed wall time each (compiling included); the rate is the sum over the jobs of
  # the last steps/s each logged (past its compile). Published anchor (CleanRL, H100):
  # eager PPO 1,022 steps/s; with compile + CUDA graphs 6,809.
  say "## 2b. Compile modes x K concurrent jobs on $DEVICE"
  cores=$(nproc)
  window=$(scaled 19 12)
  for mode in false true reduce-overhead; do
    for K in 1 4 5 8; do
      share=$(( cores / K > 0 ? cores / K : 1 ))
      for j in $(seq 1 "$K"); do
        first=$(( (j - 1) * share % cores )); last=$(( first + share - 1 ))
        OMP_NUM_THREADS=$share timeout "$window" taskset -c "$first-$last" \
          $PY -m scopeloss.rl.train --env "$(scaled Breakout MinAtarBreakout)" --loss scope \
          --seed "$j" --out "$work/c$mode-k$K/$j" --set ppo.total_steps=10000000 \
          --set run.device="$DEVICE" --set run.compile="$mode" --set run.tensorboard=false \
          > "$work/c$mode-k$K-$j.log" 2>&1 &
      done
      wait
      rates=$(for j in $(seq 1 "$K"); do grep -o 'sps [0-9]*' "$work/c$mode-k$K-$j.log" \
        | tail -1 | cut -d' ' -f2; done | awk '{s += $1; n += 1} END {print s + 0, n + 0}')
      say "compile=$mode K=$K (x $share cores, ${window}s each): ${rates% *} aggregate steps/s" \
        "(${rates#* } of $K jobs logged a rate within the window)"
    done
  done ;;

estimate)
  say "## 3. The paper grid (config.yaml) on one such machine, from the measured rates"
  rates=$OUT/rates.yaml
  [ -f "$rates" ] || { rates=benchmarks/rates/cpu-devbox.yaml; say "(no $OUT/rates.yaml: $rates)"; }
  for K in 1 4; do
    $PY -m scopeloss.plan --throughput "$rates" --gpus 1 --jobs-per-gpu "$K" 2>&1 | tail -3 \
      | tee -a "$report"
  done ;;

learning)
  say "## 3. Learning at scale: Pong, policy_entropy, seed 1, config.yaml's settings"
  budget=$(scaled 540 60)
  timeout "$budget" $PY -m scopeloss.rl.train --env Pong --loss policy_entropy --seed 1 \
    --out "$work/pong" --set run.device="$DEVICE" --set run.checkpoint_every=20 \
    > "$work/pong.log" 2>&1
  say "stopped after ${budget}s (rc $?; 124 = the time limit)"
  tail -5 "$work/pong.log" | tee -a "$report"
  cp "$work/pong/episodes.csv" "$work/pong/updates.csv" "$OUT/" 2>/dev/null
  $PY - "$OUT" <<'PYEOF' | tee -a "$report"
import sys, pandas as pd
out = sys.argv[1]
try:
    ep = pd.read_csv(f"{out}/episodes.csv")
    up = pd.read_csv(f"{out}/updates.csv")
except FileNotFoundError:
    sys.exit("no checkpointed outputs yet")
print(f"{len(ep)} episodes, last step {int(up.global_step.max())}, "
      f"mean sps {up.sps.mean():.0f}")
for q in range(5):
    part = ep[(ep.global_step > q / 5 * ep.global_step.max())
              & (ep.global_step <= (q + 1) / 5 * ep.global_step.max())]
    print(f"  steps <= {int((q + 1) / 5 * ep.global_step.max())}: mean return "
          f"{part['return'].mean():.2f} over {len(part)} episodes")
PYEOF
  ;;
*) echo "unknown section $section" >&2; exit 2 ;;
esac
rm -rf "$work"
