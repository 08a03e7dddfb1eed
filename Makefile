# The README's commands. `make setup` installs exactly requirements.lock (every package of
# .venv pinned; uv, itself pinned in the lock, does the install) and is quick when nothing
# changed: the venv is synced only when pyproject.toml or the lock is newer than the stamp.
# `make lock` re-resolves the lock from pyproject.toml, deliberately (then commit it).
# PY: the interpreter of the venv; python3.11, else python3.12, whichever runs here
# (override: make setup PY=/path/to/python3.12).
# --compile-bytecode: every job is a fresh Python process, and where bytecode is not written
# at import (PYTHONDONTWRITEBYTECODE, a read-only venv) each one would compile torch's and
# torchvision's sources again: 7 of a classifier job's 11 s of start-up on the 2-core box.
PY      ?= $(shell for p in python3.11 python3.12; do $$p -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
LOCK    := requirements.lock
# uv reads no pip.conf: where pip is configured with extra indexes or a wheel folder (these
# machines keep torch there), uv is given the same ones. Unset elsewhere: PyPI alone.
UV      := .ci/uv-with-pip-indexes $(BIN)/uv
# unsafe-best-match: like pip, the best version over all indexes (uv's default would take a
# package only from the first index that lists it).
UV_RESOLVE := --index-strategy unsafe-best-match

.PHONY: setup test test-fast lint typecheck demo smoke plan grid report power lock clean-venv generated

# Overlays reach Snakemake as ONE `--configfile a b ...`, in the order given: Snakemake
# keeps only the last of repeated --configfile flags (another grid than the one asked for).
configfiles = $(if $(strip $(1)),--configfile $(foreach c,$(1),"$(c)"))

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || test -n "$(PY)" || { echo "make setup: needs python3.11 or python3.12 (or PY=...)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet "$$(grep -E '^uv==' $(LOCK))"
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python $(UV_RESOLVE) $(LOCK)
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

# One resolution for Python 3.11 and 3.12 on every platform (--universal: markers say which
# package is for where, e.g. torch's CUDA wheels on Linux only).
lock:
	@test -x $(BIN)/uv || $(MAKE) setup
	$(UV) pip compile --quiet pyproject.toml --extra dev --universal --python-version 3.11 \
	  $(UV_RESOLVE) --custom-compile-command "make lock" -o $(LOCK)

# The workflow's schema and docs/parameters.md, from the declarations of scopeloss.params
# (a test fails when they are stale).
generated: setup
	$(BIN)/python -m scopeloss.generate schema > workflow/schemas/config.schema.yaml
	$(BIN)/python -m scopeloss.generate docs > docs/parameters.md

# Tests run on every core (pytest-xdist; TEST_WORKERS=1 for one process). Each test owns its
# temporary directories; the tests of the finished smoke run share one worker (xdist_group),
# so the run is made once.
TEST_WORKERS ?= auto
PARALLEL = $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

# The SLURM tests (tests/test_workflow_slurm.py, a real one-node cluster) spend most of their
# time waiting for the executor's status checks: they run beside the rest of the suite, and
# their output follows it. Either failing fails `make test`.
test: setup lint typecheck
	@$(BIN)/python -m pytest -q -m slurm > $(VENV)/pytest-slurm.log 2>&1 & slurm=$$!; \
	$(BIN)/python -m pytest -q -m "not slurm" $(PARALLEL) --durations=15 \
	  --junitxml=$(VENV)/pytest-main.xml; rest=$$?; \
	wait $$slurm; cluster=$$?; \
	echo "--- tests/test_workflow_slurm.py (run alongside):"; cat $(VENV)/pytest-slurm.log; \
	exit $$(( rest || cluster ))

# The fast lane (tests/conftest.py names what is slow): everything but the end-to-end
# workflow runs, learning runs, trainers driven for minutes, and SLURM. Run it often.
test-fast: setup lint typecheck
	$(BIN)/python -m pytest -q -m "not slow and not slurm" $(PARALLEL)

# ruff's short rule set (pyproject.toml): unused and undefined names, real mistakes.
lint: setup
	$(BIN)/ruff check src tests benchmarks workflow/scripts

# mypy over src/ (pyproject.toml): e.g. a field read off a typed section that it does not
# have. ~1 min the first time on the 2-core box, seconds after (.mypy_cache).
typecheck: setup
	$(BIN)/mypy

# SNAKEMAKE_ARGS: more Snakemake options, e.g. make demo SNAKEMAKE_ARGS=--dry-run.
# The overlays are checked first: Snakemake reads --configfile files before the Snakefile,
# and its message for a YAML syntax error names neither file nor line (config check does).
# --no-hooks: Snakemake skips its onsuccess hook when there is nothing to do, so the
# results are listed here instead, on every successful run.
demo: setup
	"$(BIN)/python" -m scopeloss.grid check presets/demo.yaml
	PATH="$$(cd "$(BIN)" && pwd):$$PATH" "$(BIN)/snakemake" --cores all --configfile presets/demo.yaml --no-hooks $(SNAKEMAKE_ARGS)
	@echo ""
	@echo "Demo done. Figures and tables (report: make report CONFIGS=presets/demo.yaml):"
	@ls -1 figures/*.png figures/*.pdf results/tables/*.md results/tables/rl_final.csv 2>/dev/null | sed 's/^/  /'

# Every rule once on a tiny grid (CartPole, Pong, digits_lt; about 1 min of training on a
# 2-core CPU): checks an install before a long run. Results land where the demo's do.
smoke: setup
	"$(BIN)/python" -m scopeloss.grid check presets/smoke.yaml
	PATH="$$(cd "$(BIN)" && pwd):$$PATH" "$(BIN)/snakemake" --cores all --configfile presets/smoke.yaml --no-hooks $(SNAKEMAKE_ARGS)
	@echo "Smoke run done: every rule ran (figures/, results/tables/; report: make report CONFIGS=presets/smoke.yaml)"

# K training jobs per GPU on this workstation (docs/workstation-and-cluster.md). G = GPUs seen by
# nvidia-smi (at least 1), C = cores; override any: make grid K=4 G=2 C=32.
K       ?= 2
G       ?= $(shell n=$$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); [ "$$n" -gt 0 ] 2>/dev/null && echo $$n || echo 1)
C       ?= $(shell nproc)
THREADS  = $(shell t=$$(( $(C) / ($(G) * $(K)) )); [ $$t -ge 1 ] && echo $$t || echo 1)
CONFIGS ?= config.yaml
RATES   ?= benchmarks/rates/cpu-devbox.yaml

# The grid's cost before launch: cells per suite, job-hours, wall time and GPU-hours on
# G GPUs x K jobs from the rates file (make plan RATES=... CONFIGS="config.yaml presets/x.yaml";
# measure this machine's rates: .venv/bin/python -m scopeloss.plan --calibrate).
plan: setup
	"$(BIN)/python" -m scopeloss.plan $(call configfiles,$(CONFIGS)) --throughput $(RATES) --gpus $(G) --jobs-per-gpu $(K)

# Snakemake's HTML report of a finished run. It needs the run's own --configfile overlays
# (a preset names other cells and tables than config.yaml): make report CONFIGS=presets/demo.yaml
REPORT  ?= report.html
report: setup
	PATH="$$(cd "$(BIN)" && pwd):$$PATH" "$(BIN)/snakemake" --report "$(REPORT)" $(call configfiles,$(CONFIGS))

# The seed planner on a finished run's tables (a pilot preset, the demo): the seeds per loss
# each claim's rows need for 80% power, 200 simulated grids per seed count (the workflow's
# results/tables/seed_plan.md uses 40). make power [TABLES=results/tables]
TABLES  ?= results/tables
power: setup
	"$(BIN)/python" -m scopeloss.analysis.power --tables "$(TABLES)" --out "$(TABLES)/seed_plan_fine"

# The paper grid with profiles/local, its two K-dependent values computed here:
# gpu tokens = G x K, training threads = C / (G x K); gpu_slot.py caps each GPU at K.
# OVERLAYS: --configfile files over config.yaml (checked first), e.g. OVERLAYS=sweeps.yaml.
OVERLAYS ?=
grid: setup
	"$(BIN)/python" -m scopeloss.grid check $(foreach c,$(OVERLAYS),"$(c)")
	SCOPELOSS_JOBS_PER_GPU=$(K) PATH="$$(cd "$(BIN)" && pwd):$$PATH" "$(BIN)/snakemake" \
	  --resources gpu=$$(( $(G) * $(K) )) --set-threads train_rl=$(THREADS) train_classifier=$(THREADS) \
	  --profile profiles/local $(SNAKEMAKE_ARGS) $(call configfiles,$(OVERLAYS))

clean-venv:
	rm -rf $(VENV)
