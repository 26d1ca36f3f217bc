# nps-sync: `make run` (the whole pipeline on this machine) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
AWS_PORT ?= 4599
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration e2e format events reconcile clean

$(STAMP): requirements-dev.txt layers/common/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)  ## the local runtime on 127.0.0.1:$(PORT) (PORT= to change)
	PORT=$(PORT) AWS_PORT=$(AWS_PORT) $(BIN)/python -m local

# Recompute the aggregates from the records and report differences (FIX=1 repairs them).
# Against `make run` by default; for a deployed stack set ENDPOINT= and the two table names.
ENDPOINT ?= http://127.0.0.1:$(AWS_PORT)
RECORDS_TABLE ?= nps-sync-RecordsTable
AGGREGATES_TABLE ?= nps-sync-AggregatesTable
reconcile: $(STAMP)
	AWS_ENDPOINT_URL=$(ENDPOINT) RECORDS_TABLE=$(RECORDS_TABLE) AGGREGATES_TABLE=$(AGGREGATES_TABLE) \
	  $(if $(ENDPOINT),AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1,) \
	  PYTHONPATH=layers/common $(BIN)/python -m nps_sync.reconcile $(if $(FIX),--fix,)

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
