#!/usr/bin/env bash
# MinAtar full-loop throughput of this checkout against an earlier commit, in one run:
#   bash benchmarks/rl_before_after.sh REV [ROUNDS] [UPDATES]
# Runs benchmarks/rl_throughput.py (MinAtarBreakout, scope, run.torch_threads=1) alternately
# on a worktree of REV and on this checkout, ROUNDS times each (alternating, so that a noisy
# neighbour hits both alike), and prints every full-loop steps/s and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?usage: rl_before_after.sh REV [ROUNDS] [UPDATES]}
ROUNDS=${2:-5}
UPDATES=${3:-80}
PY=${PY:-$PWD/.venv/bin/python}
WT=$(mktemp -d)
trap 'git worktree remove --force "$WT" >/dev/null 2>&1 || true' EXIT
git worktree add --quiet --detach "$WT" "$REV"
run() {  # $1 = source tree
  (cd /tmp && PYTHONPATH="$1/src" "$PY" "$1/benchmarks/rl_throughput.py" --envs MinAtarBreakout \
     --updates "$UPDATES" --env-steps 50 --set run.torch_threads=1 2>/dev/null) |
    "$PY" -c "import json,sys; print(round(json.load(sys.stdin)['envs']['MinAtarBreakout']['train_sps']))"
}
before=(); after=()
for i in $(seq "$ROUNDS"); do
  before+=("$(run "$WT")"); after+=("$(run "$PWD")")
  echo "round $i: $REV ${before[-1]}  this checkout ${after[-1]} steps/s"
done
"$PY" - "${before[*]}" "${after[*]}" <<'PY'
import statistics, sys
b, a = ([float(x) for x in s.split()] for s in sys.argv[1:3])
mb, ma = statistics.median(b), statistics.median(a)
print(f"median: before {mb:.0f}, after {ma:.0f} steps/s per core: {ma / mb:.2f}x")
PY
