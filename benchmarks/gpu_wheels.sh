#!/usr/bin/env bash
# Download, on a machine with PyPI, the cp312 x86-64 wheels that the GPU reference machine
# lacks (docs/gpu.md; there: Python 3.12, torch, numpy 2, pandas, scikit-learn,
# tensorboard already there; no network): the envs and their own imports, no deps.
#   bash benchmarks/gpu_wheels.sh [DIR]      # default .whl (git-ignored)
# There:  python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl
#         export PYTHONPATH=$PWD/src:/tmp/site
set -euo pipefail
dir=${1:-.whl}
mkdir -p "$dir"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_24_x86_64 any; do
  platforms+=(--platform "$p")
done
# Compiled wheels for CPython 3.12. About 52 MB in all (procgen 48 MB): a device call
# carries at most 64 MiB with the repo. WITH_NUMPY1=1 adds numpy 1.26.4 (18 MB) in case
# procgen-mirror, built against numpy 1, fails under the machine's numpy 2.
extra=()
[ "${WITH_NUMPY1:-0}" = 1 ] && extra+=(numpy==1.26.4)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d "$dir" \
  ale-py==0.12.1 procgen-mirror==0.10.7 cffi==1.17.1 "${extra[@]}"
# Pure-Python packages (gym 0.26.2, which procgen imports, ships only an sdist).
python3 -m pip wheel -q --no-deps -w "$dir" gymnasium==1.4.0 farama-notifications==0.0.4 \
  gym3==0.3.3 gym==0.26.2 gym-notices==0.1.0 pycparser==2.23 minatar==1.0.15
ls -la "$dir"
du -sh "$dir"
