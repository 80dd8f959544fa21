# The two commands a newcomer needs (README): `make run` and `make test`.
# Both create .venv/ on first use and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: install install-dev run report report-small test ui ui-screenshot lint bench gpu-check clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

# Stamps make a second `make test` start in seconds; pyproject.toml changes reinstall.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install $(PIP_FLAGS) -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import torch, pytorch_lightning, torch_geometric, mlflow, dvc, optuna, onnxruntime"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## run: install, fetch the bundled data from the in-repo DVC remote, run the whole pipeline
run: install
	$(BIN)/dvc pull data.dvc
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@$(BIN)/blade summary

## report: the paper-claims comparison and the training ablation on every bundled graph, then
## docs/report.md; report-small: cora_ml and citeseer only (`blade report` then redraws it)
report: install
	$(BIN)/dvc pull data.dvc
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro reports/dvc.yaml

report-small: install
	$(BIN)/dvc pull data.dvc
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro reports/dvc.yaml:summary@cora_ml \
		reports/dvc.yaml:summary@citeseer reports/dvc.yaml:ablate_summary@cora_ml reports/dvc.yaml:ablate_summary@citeseer

## test: install with the dev extra and run the whole test suite
test: install-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

## ui: the MLflow UI on this project's store, on http://127.0.0.1:5000 (PORT=... to change)
PORT ?= 5000
ui: install
	@$(BIN)/python -c "from pipeline import mlflow_views; print(mlflow_views.ui_links($(PORT)))"
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlruns/mlflow.db" \
		--default-artifact-root "file://$(CURDIR)/mlruns/artifacts" --host 127.0.0.1 --port $(PORT)

## ui-screenshot: docs/mlflow-runs.png, experiment blade's runs page in headless Chromium, as a
## new user sees it (needs `apt-get install chromium`)
ui-screenshot: install
	$(BIN)/python bench/ui_screenshot.py $(ARGS)

## gpu-check: BLADE trained on CUDA against the CPU, and the scoring path (bench/gpu_check.py).
## Needs only torch, pytorch-lightning, numpy, pandas, scipy, PyYAML and data/amazon0302: it runs
## on a GPU machine without this project's virtual environment (then with that machine's python3).
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) bench/gpu_check.py $(ARGS)

lint: install-dev
	$(BIN)/ruff check pipeline models tests bench

clean:
	rm -rf $(VENV) outputs .pytest_cache
