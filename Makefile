# The README's commands. `make setup` is quick when nothing changed: the venv is rebuilt
# only when pyproject.toml is newer than the stamp file.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup test demo clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

# --no-hooks: Snakemake skips its onsuccess hook when there is nothing to do, so the
# results are listed here instead, on every successful run.
demo: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores all --configfile presets/demo.yaml --no-hooks
	@echo ""
	@echo "Demo done. Figures and tables (report: snakemake --report report.html):"
	@ls -1 figures/*.png figures/*.pdf results/tables/*.md results/tables/rl_final.csv 2>/dev/null | sed 's/^/  /'

clean-venv:
	rm -rf $(VENV)
