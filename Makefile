# Two commands: `make run` (everything, on a fresh machine) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := app

.PHONY: run test install db demo clean

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

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) instance
