# Two commands: `make run` (everything, on a fresh machine) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := app

.PHONY: run test install db demo clean serve test-pg

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

db: install
	$(BIN)/flask --app app db upgrade

demo: db
	$(BIN)/flask --app app search reindex --if-outdated
	$(BIN)/flask --app app content load --demo
	$(BIN)/flask --app app search sync

run: demo
	@echo "http://127.0.0.1:5000  (demo accounts: see README.md, password demo-pass-2026)"
	$(BIN)/flask --app app run --host 127.0.0.1 --port 5000

# The suite runs in parallel (pytest-xdist): one process per core, at most 4. Tests that share a
# module-scoped fixture carry an xdist_group mark and stay on one process. TEST_WORKERS=0: serial.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadgroup

test: install
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

clean:
	rm -rf $(VENV) instance

# Production on one machine: gunicorn (workers from the cores, gunicorn.conf.py) behind nginx.
# The secret key comes from FLASK_SECRET_KEY or FLASK_SECRET_KEY_FILE; no demo data is loaded.
# See docs/operations.md for nginx, systemd, backups and monitoring.
PROD_STAMP := $(VENV)/.installed-prod

$(PROD_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,prod]'
	touch $(PROD_STAMP)

serve: $(PROD_STAMP)
	APP_CONFIG=production $(BIN)/flask --app app db upgrade
	APP_CONFIG=production $(BIN)/flask --app app content load
	APP_CONFIG=production $(BIN)/flask --app app search reindex --if-outdated
	APP_CONFIG=production exec $(BIN)/gunicorn --config gunicorn.conf.py

# The whole suite on PostgreSQL: TEST_DATABASE_URL (a role that may create databases), or a
# throwaway cluster of Debian's postgresql in a temporary folder (installed when missing).
test-pg: $(STAMP)
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "$$TEST_DATABASE_URL" ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -q postgresql >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1)) \
	    || echo "PostgreSQL could not be installed"; \
	fi
	HELPDESK_TEST_DATABASE=postgres $(BIN)/python -m pytest $(PYTEST_PARALLEL)

# End-to-end tests in a real browser: Playwright (the `browser` extra) driving Debian's Chromium.
# Installs Chromium (and a Japanese font for readable screenshots) with apt-get when missing and
# possible; without Chromium the suite is skipped with a message. Screenshots: tests/artifacts/.
BROWSER_STAMP := $(VENV)/.installed-browser
CHROMIUM := /usr/bin/chromium

$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,browser]'
	touch $(BROWSER_STAMP)

.PHONY: test-browser
test-browser: $(BROWSER_STAMP)
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  (apt-get install -y -q chromium fonts-ipafont-gothic >/dev/null 2>&1 \
	    || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-ipafont-gothic >/dev/null 2>&1)) \
	    || echo "Chromium could not be installed (apt-get failed); the browser tests will be skipped."; \
	fi
	@[ -x $(CHROMIUM) ] || echo "No Chromium at $(CHROMIUM): the browser tests will be skipped."
	HELPDESK_BROWSER_TESTS=1 HELPDESK_BROWSER_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -rsx tests/browser
