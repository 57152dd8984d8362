# Two commands on a fresh machine: `make run` and `make test` (Python 3.11+, make and git).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test drill lint clean bench edge

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "MiniTwit needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	@touch $@

install: $(STAMP)

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	@touch $@

# Serves on http://127.0.0.1:5000 with an embedded PostgreSQL unless DATABASE_URL is set.
run: install
	LOG_FORMAT=$${LOG_FORMAT:-text} $(BIN)/minitwit serve

# promtool/amtool (Debian's packages, unpacked into .tools/) let the suite check the monitoring
# configuration; without them those tests skip and say why.
test: install
	bash .ci/install-promtool.sh
	$(BIN)/pytest

# The edge under a rolling restart: Caddy (ops/caddy/Caddyfile) in front of two replicas, the
# first 5,000 scenario actions through HTTPS while each replica is stopped and started; .ci/run
# runs it after `make test`. Figures: requests/s, failures, replies over 300 ms.
edge: install
	MINITWIT_EDGE_REPLAY=1 $(BIN)/pytest sim_tests/test_edge.py -s -q

# The restore drill alone, with its figures: rows and checksum of every table, before and after.
drill: install
	$(BIN)/pytest tests/test_backup.py -k restore_drill -s -q

# Load replay of the full scenario against a fresh server, then read latency at 10k vs 1M
# messages; reports in bench-results/. LOAD_ARGS/SCALE_ARGS pass options (see --help).
bench: $(VENV)/.bench-installed
	$(BIN)/minitwit bench load $(LOAD_ARGS)
	$(BIN)/minitwit bench scale $(SCALE_ARGS)

lint: install
	$(BIN)/ruff check src tests sim_tests
	$(BIN)/mypy
	$(BIN)/bandit -q --ini setup.cfg

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
