#!/usr/bin/env bash
# Fixed-seed outputs of both trainers, as digests: run before and after a refactor that
# must not change the numbers (issue 20), on the same machine, and compare the lines.
#   bash benchmarks/fixed_seed_outputs.sh [WORKDIR]
# CartPole (policy_entropy and scope) and digits_lt (plain and augmented_cuda, scope) at
# tiny budgets on the CPU, one thread. Prints one "sha256  file" line per output.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$PWD/.venv/bin/python}
W=${1:-$(mktemp -d)}
mkdir -p "$W"
RUN='{"device": "cpu", "torch_threads": 1, "env_threads": 1, "tensorboard": false}'
for loss in policy_entropy scope; do
  $PY -m scopeloss.rl.train --env CartPole-v1 --loss $loss --seed 3 --out "$W/rl_$loss" \
    --run "$RUN" --set ppo.total_steps=2048 --set ppo.num_envs=4 --set ppo.num_steps=128 \
    --set ppo.num_minibatches=4 --set ppo.update_epochs=2 --set ppo.lr=0.003 >/dev/null 2>&1
done
CRUN='{"device": "cpu", "torch_threads": 1, "num_workers": 0, "tensorboard": false}'
for exp in plain augmented_cuda; do
  $PY -m scopeloss.classify.train --dataset digits_lt --experiment $exp --loss scope --seed 3 \
    --out "$W/cl_$exp" --run "$CRUN" --set dataset.image_size=16 --set dataset.resize_size=16 \
    --set experiment.model=resnet18 --set experiment.epochs=3 --set experiment.batch_size=128 2>/dev/null
done
cd "$W"
# wall-clock and run-identity fields differ between runs by design: digest the numbers only
for f in rl_*/episodes.csv rl_*/updates.csv cl_*/per_class.csv cl_*/history.csv; do
  [ -f "$f" ] || continue
  case "$f" in
    */updates.csv|*/history.csv) $PY - "$f" <<'PY'
import sys, hashlib, pandas as pd
f = sys.argv[1]; d = pd.read_csv(f)
d = d[[c for c in d.columns if not any(k in c for k in ("time", "wall", "sps", "per_s"))]]
print(hashlib.sha256(d.to_csv(index=False).encode()).hexdigest()[:16], f, list(d.columns))
PY
    ;;
    *) echo "$(sha256sum "$f" | cut -c1-16) $f";;
  esac
done
