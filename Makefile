# nps-sync: `make run` (the whole pipeline on this machine) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration e2e format events clean

$(STAMP): requirements-dev.txt layers/common/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)  ## the local runtime on 127.0.0.1:$(PORT) (PORT= to change)
	PORT=$(PORT) $(BIN)/python -m local

test: lint $(STAMP)  ## lint, then every test
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

events: $(STAMP)  ## re-sign events/ (Standard Webhooks events carry a timestamp)
	$(BIN)/python -m local.events

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .aws-sam
