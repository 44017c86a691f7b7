# creatorpay: `make run` starts the whole stack, `make test` runs the whole suite.
# Both create .venv (Python 3.11+) and install the project on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test test-sqlite test-postgres lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "creatorpay needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Sandbox, web (gunicorn), Celery worker and beat under one supervisor; Ctrl-C stops them all.
run: $(STAMP)
	$(BIN)/creatorpay dev

# The guided demo against the `make run` stack (run that in another terminal first): every
# flow once, then the balances, statements, trial balance and reconciliation, checked.
# Exit 1 if any figure does not reconcile, 2 if the stack is not up.
demo: $(STAMP)
	$(BIN)/creatorpay demo

# The whole suite: lint, types, the SQLite leg, then the PostgreSQL + Redis leg when
# CREATORPAY_TEST_DATABASE_URL and CREATORPAY_TEST_BROKER_URL are set (CI sets both).
test: $(STAMP) lint typecheck test-sqlite
	@if [ -n "$$CREATORPAY_TEST_DATABASE_URL" ]; then $(MAKE) --no-print-directory test-postgres; \
	else echo "PostgreSQL leg not run: set CREATORPAY_TEST_DATABASE_URL (and CREATORPAY_TEST_BROKER_URL) to run it"; fi

test-sqlite: $(STAMP)
	env -u CREATORPAY_TEST_DATABASE_URL -u CREATORPAY_TEST_BROKER_URL $(BIN)/python -m pytest -q -p no:cacheprovider

test-postgres: $(STAMP)
	@test -n "$$CREATORPAY_TEST_DATABASE_URL" || (echo "CREATORPAY_TEST_DATABASE_URL is not set" && exit 2)
	@test -n "$$CREATORPAY_TEST_BROKER_URL" || (echo "CREATORPAY_TEST_BROKER_URL is not set" && exit 2)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check payments webhooks tasks tests bench celeryconfig.py

typecheck: $(STAMP)
	$(BIN)/mypy --strict payments webhooks tasks

bench: $(STAMP)
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/webhooks.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
