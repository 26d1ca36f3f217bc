# nps-sync: `make run` (the whole pipeline on this machine) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
AWS_PORT ?= 4599
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration e2e format events reconcile clean bench seed redrive security load load-faults

$(STAMP): requirements-dev.txt layers/common/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)  ## the local runtime on 127.0.0.1:$(PORT) (PORT= to change)
	PORT=$(PORT) AWS_PORT=$(AWS_PORT) SEED=$(SEED) $(BIN)/python -m local

# Demo data (local/seed.py): `make run` loads it unless SEED=0; `make seed N=500 SEEDVAL=2`
# loads N more customers into a running `make run` (another SEEDVAL gives other customers).
SEED ?= 1
N ?= 500
SEEDVAL ?= 2
seed: $(STAMP)
	$(BIN)/python -m local.seed --url http://127.0.0.1:$(PORT) --count $(N) --seed $(SEEDVAL)

# Benchmarks and the cost model (not part of `make test`): prints the table, writes
# bench/results.md and docs/cost.md. FULL=1 adds the 10^6-response scale run (~10 minutes more).
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(FULL),--full,)

# Recompute the aggregates from the records and report differences (FIX=1 repairs them).
# Against `make run` by default; for a deployed stack set ENDPOINT= and the two table names.
ENDPOINT ?= http://127.0.0.1:$(AWS_PORT)
RECORDS_TABLE ?= nps-sync-RecordsTable
AGGREGATES_TABLE ?= nps-sync-AggregatesTable
reconcile: $(STAMP)
	AWS_ENDPOINT_URL=$(ENDPOINT) RECORDS_TABLE=$(RECORDS_TABLE) AGGREGATES_TABLE=$(AGGREGATES_TABLE) \
	  $(if $(ENDPOINT),AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1,) \
	  PYTHONPATH=layers/common $(BIN)/python -m nps_sync.cli.reconcile $(if $(FIX),--fix,)

# Move dead-lettered webhook deliveries back to the delivery queue (docs/operations.md);
# DESTINATIONS=1: dead-lettered CRM/billing writes back to the destination queue.
# Against `make run` by default; for a deployed stack set ENDPOINT= and the two queue URLs.
ifdef DESTINATIONS
DLQ ?= nps-sync-DestinationDeadLetterQueue
DELIVERY_QUEUE ?= nps-sync-DestinationQueue
endif
DLQ ?= nps-sync-DeliveryDeadLetterQueue
DELIVERY_QUEUE ?= nps-sync-DeliveryQueue
redrive: $(STAMP)
	AWS_ENDPOINT_URL=$(ENDPOINT) \
	  $(if $(ENDPOINT),AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1,) \
	  PYTHONPATH=layers/common $(BIN)/python -m nps_sync.cli.redrive --from $(DLQ) --to $(DELIVERY_QUEUE) $(if $(LIMIT),--limit $(LIMIT),)

# Both cores; a test file stays on one worker (its fixtures, e.g. one local runtime, are shared).
test: lint $(STAMP)  ## lint, then every test
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml
	$(MAKE) security

# checkov (docs/security.md): its pins conflict with ours, so it has a venv of its own.
# Every suppression is justified inline in template.yaml (Metadata: checkov: skip).
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
$(CHECKOV):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30
security: $(CHECKOV)
	$(CHECKOV) --framework cloudformation -f template.yaml --compact --quiet --skip-download

# Load with nothing lost (docs/security.md): ~20 senders, a few thousand webhooks against a
# runtime of its own on 127.0.0.1 (SEED=0), then counts and reconcile. Not part of `make test`.
load: $(STAMP)
	$(BIN)/python -m local.load $(if $(LOAD_N),--count $(LOAD_N),)

# The same under injected AWS faults (local/faults.py: 5 % throttles/500s on DynamoDB,
# EventBridge and SQS sends, 2 % lost answers), with a subscriber: every event delivered or
# dead-lettered. 300 webhooks by default (~50 s on 2 cores, measured 2026-12-02); LOAD_N= to change.
LOAD_FAULTS_N ?= 300
load-faults: $(STAMP)
	$(BIN)/python -m local.load --faults --count $(or $(LOAD_N),$(LOAD_FAULTS_N))

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

# docs/dashboard.png (the README shows it): the browser test on the demo data, its screenshot
# kept this time (`make test` writes it to a temporary file). SCREENSHOT_CUSTOMERS= to resize.
SCREENSHOT_CUSTOMERS ?= 150
.PHONY: screenshot
screenshot: $(STAMP)
	NPS_SYNC_SCREENSHOT=docs/dashboard.png NPS_SYNC_REQUIRE_BROWSER=1 \
	  NPS_SYNC_DASHBOARD_CUSTOMERS=$(SCREENSHOT_CUSTOMERS) \
	  $(BIN)/python -m pytest tests/e2e/test_dashboard_browser.py -p no:cacheprovider

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

events: $(STAMP)  ## re-sign events/ (Standard Webhooks events carry a timestamp)
	$(BIN)/python -m local.events

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache .aws-sam
