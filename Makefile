# VaultCraft: `make run` starts everything, `make test` checks everything.
# Only Python 3.11+ is needed; the virtualenv is (re)built when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck audit pytest soak bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	exec $(BIN)/vaultcraft run

test: lint typecheck audit pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy runtime messaging ledger_core gateway workers vaultcraft bench

audit: $(STAMP)
	$(BIN)/python .ci/audit_dependencies.py

# Coverage (subprocesses included) with the floor of [tool.coverage.report] fail_under;
# a partial run (`make pytest PYTEST_ARGS=...`) can skip it with COVERAGE=.
COVERAGE ?= --cov --cov-report=term
# pytest-xdist workers (0: none). Each takes whole test files, so a module's fixtures (a
# running stack, a generated ledger) are set up once; files run in collection order, which
# puts the slowest first (tests/conftest.py). See tests/support/parallel.py.
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/pytest $(COVERAGE) -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The chaos run for longer (seconds); replay one with VAULTCRAFT_CHAOS_SEED=<seed>.
VAULTCRAFT_CHAOS_SECONDS ?= 600
soak: $(STAMP)
	VAULTCRAFT_CHAOS_SECONDS=$(VAULTCRAFT_CHAOS_SECONDS) $(BIN)/pytest tests/chaos/test_chaos_run.py -s $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis test-artifacts
