# Two entry points: `make run` (the server on SQLite and a local folder) and `make test`
# (every check CI runs); `make check` is the fast subset while working. Each creates and
# fills its own virtualenv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: run test check lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server,test,ray]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# `make run PORT=8322` serves on another port (so does LOOPIN_PORT=8322 make run).
run: $(STAMP)
	$(BIN)/loopin serve --demo$(if $(PORT), --port $(PORT))

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

# The fast inner loop: lint and the tests that need neither PostgreSQL, Chromium nor
# server processes.
check: $(STAMP) lint
	$(BIN)/pytest -n 2 -m "not postgres and not browser and not slow"

# Two pytest workers: most of the suite waits on servers, browsers and databases, so the
# two cores stay busy (every test has its own database, folder and ports).
test: $(STAMP) lint
	scripts/test-services.sh
	bash scripts/install-browser.sh
	bash scripts/install-nginx.sh
	$(BIN)/pytest -n 2

bench: $(STAMP)
	scripts/test-services.sh
	$(BIN)/python bench/bench_core.py

clean:
	rm -rf $(VENV) loopin-data .pytest_cache .mypy_cache .ruff_cache
