# The README's two commands. Both create .venv (Python 3.11) and install the project if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: reproduce test lint dvc-repro clean-results ship-model

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## Regenerate every figure and table of the default tier (params.yaml: tier).
reproduce: $(VENV)/.installed
	snakemake --cores all

## Run the test suite (includes the ci-tier pipeline, twice, in temporary copies).
test: $(VENV)/.installed
	python -m pytest -q

lint: $(VENV)/.installed
	ruff check gpicl tests
	ruff format --check gpicl tests
	snakefmt --check workflow
	snakemake --lint

## The same pipeline through DVC (records hashes in dvc.lock).
dvc-repro: $(VENV)/.installed
	dvc repro

## Copy the default tier's exported learner and its model card into the package (then commit).
ship-model: $(VENV)/.installed
	snakemake --cores all export_all
	cp results/$$(python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['tier'])")/export/default.pt gpicl/checkpoints/default.pt
	cp results/$$(python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['tier'])")/export/MODEL_CARD.md gpicl/checkpoints/MODEL_CARD.md
