# The README's commands. `run` and `test` install the environment first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.metaleep-install
export MPLBACKEND ?= Agg

.PHONY: install run grid grid-quick test lint typecheck pytest bench fuzz notebooks clean

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

# Hypothesis fuzzing of the metric API (and the other fuzzed entry points) at 5x the suite's
# example counts: over 10,000 metric cases, about a minute on 2 cores.
fuzz: install
	METALEEP_FUZZ_FACTOR=5 $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz.py

bench: install
	$(PY) benchmarks/run_all.py

# Execute the notebooks top to bottom and store them with their outputs (a few minutes; their
# studies write under runs/). Only clean outputs are written: no warning, no machine path.
notebooks: install
	$(PY) tools/run_notebooks.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
