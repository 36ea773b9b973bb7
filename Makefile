# Two entry points for a new machine: `make run` and `make test`. Both build .venv from the pinned
# requirements first, so nothing else needs installing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck migrate bench-ingest bench-personal-ingest bench-sns bench-paused bench-throughput bench-compose bench-pacing bench-feedback bench-stats bench-ingest-vs-send bench-redirect bench-storage lock clean

# Tests run in parallel (pytest-xdist), each worker with databases of its own. More workers
# than CPUs: many tests spend their time waiting on a worker process, a poll or a clock.
TEST_WORKERS ?= 4
# An empty PYTHONDONTWRITEBYTECODE lets pytest cache the test modules it rewrites for its
# assertions (in __pycache__, ignored by git), instead of every worker rewriting them again.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

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

# Everything CI runs: lint, types, and every test on SQLite and PostgreSQL.
test: $(STAMP) lint typecheck
	$(PYTEST) $(PYTEST_ARGS)

# While coding: the unit and db tiers on SQLite only (no PostgreSQL, no processes): 50 s on an
# idle 2-CPU machine, about two minutes on a busy one (README, Tests).
test-fast: $(STAMP)
	$(PYTEST) -m "unit or db" --backend sqlite $(PYTEST_ARGS)

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

bench-personal-ingest: $(STAMP)
	$(BIN)/python -m bench.personal_ingest

bench-sns: $(STAMP)
	$(BIN)/python -m bench.sns_ingest

bench-paused: $(STAMP)
	$(BIN)/python -m bench.paused_claim

bench-throughput: $(STAMP)
	$(BIN)/python -m bench.throughput

bench-compose: $(STAMP)
	$(BIN)/python -m bench.compose

bench-pacing: $(STAMP)
	$(BIN)/python -m bench.pacing

bench-feedback: $(STAMP)
	$(BIN)/python -m bench.feedback

bench-stats: $(STAMP)
	$(BIN)/python -m bench.stats

bench-ingest-vs-send: $(STAMP)
	$(BIN)/python -m bench.ingest_vs_send

bench-redirect: $(STAMP)
	$(BIN)/python -m bench.redirect

bench-storage: $(STAMP)
	$(BIN)/python -m bench.storage

# Re-pin after changing pyproject.toml's ranges.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv && .lockvenv/bin/pip install --quiet . \
	  && .lockvenv/bin/pip freeze --exclude ses-sender > requirements.txt && rm -rf .lockvenv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
