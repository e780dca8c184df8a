# The README's commands. `run` and `test` install the environment first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.metaleep-install
export MPLBACKEND ?= Agg

.PHONY: install run grid grid-quick test lint typecheck pytest bench clean

install: $(STAMP)

$(STAMP): pyproject.toml tools/install.sh
	@bash tools/install.sh

run: install
	$(PY) -m metaleep run

grid: install
	$(PY) -m metaleep grid

grid-quick: install
	$(PY) -m metaleep grid --quick

pytest: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check metaleep tests tools benchmarks conftest.py
	$(VENV)/bin/ruff format --check metaleep tests tools benchmarks

typecheck: install
	$(VENV)/bin/mypy

test: install
	$(VENV)/bin/ruff check metaleep tests tools benchmarks conftest.py
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
