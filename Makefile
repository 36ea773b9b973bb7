# Two entry points for a new machine: `make run` and `make test`. Both build .venv from the pinned
# requirements first, so nothing else needs installing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check migrate bench-ingest bench-sns bench-paused bench-throughput bench-pacing bench-feedback lock clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

.env: | $(STAMP)
	$(BIN)/python scripts/init_env.py .env.example .env

run: $(STAMP) .env
	$(BIN)/ses-sender serve

test: $(STAMP) lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

migrate: $(STAMP)
	$(BIN)/ses-sender migrate

bench-ingest: $(STAMP)
	$(BIN)/python -m bench.ingest

bench-sns: $(STAMP)
	$(BIN)/python -m bench.sns_ingest

bench-paused: $(STAMP)
	$(BIN)/python -m bench.paused_claim

bench-throughput: $(STAMP)
	$(BIN)/python -m bench.throughput

bench-pacing: $(STAMP)
	$(BIN)/python -m bench.pacing

bench-feedback: $(STAMP)
	$(BIN)/python -m bench.feedback

# Re-pin after changing pyproject.toml's ranges.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv && .lockvenv/bin/pip install --quiet . \
	  && .lockvenv/bin/pip freeze --exclude ses-sender > requirements.txt && rm -rf .lockvenv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
