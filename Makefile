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

demo: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores all --configfile presets/demo.yaml

clean-venv:
	rm -rf $(VENV)
