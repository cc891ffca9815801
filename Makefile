# Two commands matter: `make serve` and `make test`. Both set up everything
# they need on a fresh machine (a .venv with casedesk installed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-topology bench lint migrate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/casedesk serve

migrate: $(STAMP)
	$(BIN)/casedesk migrate

# The OpenAPI linters of tests/contract come from npm (pinned in its package.json).
CONTRACT_TOOLS := tests/contract/node_modules/.bin/spectral

$(CONTRACT_TOOLS): tests/contract/package.json
	command -v npm >/dev/null 2>&1 && npm ci --prefix tests/contract --no-audit --no-fund --silent || echo "no npm: tests/contract will skip its linters" >&2

test: $(STAMP) $(CONTRACT_TOOLS)
	$(BIN)/python -m pytest -q

# The several-process topology alone (it is part of `make test` too, ~45 s):
# deploy/local-cluster's primary, hot standby, PgBouncer, 3 APIs and 2 workers.
test-topology: $(STAMP)
	$(BIN)/python -m pytest -q tests/topology

# The HTTP load comes from wrk in a process of its own; without it a Python
# generator takes its place and, on a small machine, the server's CPU with it.
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || .ci/install-debian wrk || echo "no wrk: using the Python load generator" >&2
	$(BIN)/python -m tests.bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict domain

clean:
	rm -rf $(VENV) *.egg-info
